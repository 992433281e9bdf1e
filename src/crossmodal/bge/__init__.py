"""BAAI's Visualized-BGE and BGE-M3, computed by crossmodal's own graphs.

Two model families, written from what BAAI's FlagEmbedding code computes in
eval mode and tested against it on seeded random checkpoints in the real file
layouts:

* **Visualized-BGE** (``Visualized_base_en_v1.5.pth``, ``Visualized_m3.pth``
  beside a BGE text model's ``config.json`` and tokenizer): an EVA02-CLIP vision
  tower whose patch tokens are projected into the text model's embedding space
  and encoded by the BERT / XLM-RoBERTa text encoder; text, image and fused
  image+text vectors (:mod:`.visualized`, :mod:`.eva`, :mod:`.text_encoder`).
* **BGE-M3** (an XLM-RoBERTa directory plus ``colbert_linear.pt`` and
  ``sparse_linear.pt``): dense, sparse lexical and ColBERT multi-vector outputs
  and their scores (:mod:`.m3`, :mod:`.m3_outputs`).

The torch modules (:mod:`.visualized`, :mod:`.m3`) need the ``torch`` extra.
Tokenization (:mod:`.tokens`), image preprocessing (:mod:`.images`), the
post-processing of M3's outputs (:mod:`.m3_outputs`) and ONNX Runtime execution
of the exported graphs (:mod:`.onnx_run`) use numpy, PIL, ``tokenizers`` and
``onnxruntime`` only. Nothing is imported here, so importing a numpy-only
module never pulls in torch.
"""
