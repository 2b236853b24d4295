# Zero-shot evaluation on pascal_context_459 (prepare with `llmformer data prepare`).
_base_ = "./open_vocab_eval.py"
data_root = "data/datasets/pascal_context_459"
val_dataloader = dict(dataset=dict(type="PascalContext459Dataset", data_root=data_root))
test_dataloader = val_dataloader
