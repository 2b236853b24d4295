# Zero-shot evaluation on ade20k_847 (prepare with `llmformer data prepare`).
_base_ = "./open_vocab_eval.py"
data_root = "data/datasets/ade20k_847"
val_dataloader = dict(dataset=dict(type="ADE20K847Dataset", data_root=data_root))
test_dataloader = val_dataloader
