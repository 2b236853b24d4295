# Zero-shot evaluation on pascal_context_59 (prepare with `llmformer data prepare`).
_base_ = "./open_vocab_eval.py"
data_root = "data/datasets/pascal_context_59"
val_dataloader = dict(dataset=dict(type="PascalContext59Dataset", data_root=data_root))
test_dataloader = val_dataloader
