"""Data stage: loading (hub, files, aclImdb), labelled splits, text encoding, and tables in files."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {
    "load_splits": "loading",
    "LabeledData": "splits", "load_labeled_data": "splits", "select_text_label": "splits",
    "drop_empty_texts": "splits", "stratified_sample": "splits",
    "TextEncoder": "encoding", "clean_text": "encoding", "mean_by_text": "encoding", "padded_batch": "encoding",
    "padded_batches": "encoding", "tokenize_dataset": "encoding",
    "check_field_counts": "tables", "read_error_fix": "tables", "read_chunks": "tables",
})  # fmt: skip
