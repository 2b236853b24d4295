# Zero-shot evaluation on pascal_voc_20 (prepare with `llmformer data prepare`).
_base_ = "./open_vocab_eval.py"
data_root = "data/datasets/pascal_voc"
val_dataloader = dict(dataset=dict(type="PascalVOC20Dataset", data_root=data_root))
test_dataloader = val_dataloader
