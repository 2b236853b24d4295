"""The one ignore index of the project and the label-value limits that follow from it."""

from __future__ import annotations

# Labels are loaded as int64 and every dataset's own "unlabelled"/background value is mapped here,
# so 16-bit sets (ADE20K-847, Pascal Context-459) keep class 255 as a real class.
IGNORE_INDEX = 65535

# Label maps with more classes than this are stored as 16-bit PNG; smaller ones as 8-bit PNG.
MAX_8BIT_CLASSES = 255
EIGHT_BIT_IGNORE = 255
