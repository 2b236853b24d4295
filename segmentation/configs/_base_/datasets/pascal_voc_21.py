# Zero-shot evaluation on pascal_voc_21 (prepare with `llmformer data prepare`).
_base_ = "./open_vocab_eval.py"
data_root = "data/datasets/pascal_voc"
val_dataloader = dict(dataset=dict(type="PascalVOC21Dataset", data_root=data_root))
test_dataloader = val_dataloader
