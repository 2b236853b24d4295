# Zero-shot evaluation on ade20k_150 (prepare with `llmformer data prepare`).
_base_ = "./open_vocab_eval.py"
data_root = "data/datasets/ade20k_150"
val_dataloader = dict(dataset=dict(type="ADE20K150Dataset", data_root=data_root))
test_dataloader = val_dataloader
