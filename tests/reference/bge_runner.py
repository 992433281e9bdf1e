"""Runs BAAI's reference code in its own process: ``python bge_runner.py REQUEST.json``.

Started by :mod:`tests.reference.bge_reference`, never imported by the tests.
The request names the unpacked reference (:mod:`tests.reference.bge_env`) and
tasks (``visualized``, ``m3``, ``transform``; M3 runs alone: the two reference
releases are both called ``FlagEmbedding``), each with its calls; a task's
results go to its ``<out>.npz`` (arrays) and ``<out>.json`` (errors, scalars,
logs).

What this process adds around the unmodified reference, and why:

* ``sys.path`` gets the unpacked packages (here only).
* ``torchvision`` and ``FlagEmbedding`` (and, for M3, the package chain down to
  the embedder module) are bare package modules whose ``__init__`` is not run:
  torchvision's loads C operators that fail to register with this torch, and
  FlagEmbedding 1.4.2's imports its rerankers, which fail under transformers 5.
  Submodules import normally from the real files.
* Visualized-BGE under transformers 5 (its code targets 4.x): the BERT
  embeddings no longer take ``past_key_values_length`` (now ``cache_length``),
  the encoder no longer takes ``head_mask`` / ``past_key_values`` /
  ``output_*``, and sdpa attention refuses ``encode_text``'s float16 mask with
  float32 states. Two instance-level call shims translate these calls and cast
  the mask to the hidden states' dtype, as the maintained copy of the code
  does (FlagOpen/FlagEmbedding research/visual_bge). The arithmetic is untouched.
* The model is put in eval mode, which the reference never does (see the
  ``diagnostics`` call).

Each call's wall time is recorded (``meta["seconds"]``), for bench/bge.py.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import logging
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any


def _bare_package(name: str, path: Path) -> None:
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(path)]
    sys.modules[name] = importlib.util.module_from_spec(spec)


def _setup(env: dict[str, str], task: str) -> None:
    root = Path(env["m3" if task == "m3" else "visual"])
    sys.path[:0] = [str(root), env["common"]]
    _bare_package("torchvision", Path(env["common"]) / "torchvision")
    _bare_package("FlagEmbedding", root / "FlagEmbedding")
    if task == "m3":
        for sub in ("inference", "inference/embedder", "inference/embedder/encoder_only"):
            _bare_package("FlagEmbedding." + sub.replace("/", "."), root / "FlagEmbedding" / sub)


# ---------------------------------------------------------------- Visualized-BGE


def _shim_transformers5(model: Any) -> None:
    embeddings_forward = model.bge_embeddings.forward
    encoder_forward = model.bge_encoder.forward

    def embeddings(input_ids=None, position_ids=None, token_type_ids=None, inputs_embeds=None, past_key_values_length=0):
        return embeddings_forward(input_ids=input_ids, position_ids=position_ids, token_type_ids=token_type_ids,
                                  inputs_embeds=inputs_embeds, cache_length=past_key_values_length)

    def encoder(hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, past_key_values=None, use_cache=False, output_attentions=False,
                output_hidden_states=False, return_dict=True):
        if attention_mask is not None and attention_mask.is_floating_point():
            attention_mask = attention_mask.to(hidden_states.dtype)
        return encoder_forward(hidden_states, attention_mask=attention_mask)

    model.bge_embeddings.forward = embeddings
    model.bge_encoder.forward = encoder


def _visualized(req: dict[str, Any], arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    import torch
    from PIL import Image

    weights = Path(req["weights"])
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    depth = len({k.split(".")[3] for k in state if k.startswith("model_visual.visual.blocks.")})
    eva_name, bge_name = {"base-en": ("EVA02-CLIP-B-16", "BAAI/bge-base-en-v1.5"),
                          "m3": ("EVA02-CLIP-L-14", "BAAI/bge-m3")}[req["variant"]]
    from FlagEmbedding.visual import modeling
    from FlagEmbedding.visual.eva_clip import add_model_config, get_model_config
    from FlagEmbedding.visual.eva_clip.rope import VisionRotaryEmbeddingFast

    # A depth-cut copy of the EVA config, registered under its own name (later paths win).
    config = get_model_config(eva_name)
    config["vision_cfg"]["layers"] = depth
    cfg_dir = Path(tempfile.mkdtemp())
    (cfg_dir / f"{eva_name}.json").write_text(json.dumps(config))
    add_model_config(cfg_dir)
    model = modeling.Visualized_BGE(model_name_bge=bge_name, model_weight=str(weights), from_pretrained=req["model_dir"])
    meta["training_after_construction"] = bool(model.training)
    meta["env_RoPE"] = os.environ.get("RoPE")
    meta["patch_dropout"] = float(config["vision_cfg"].get("patch_dropout", 0.0))
    _shim_transformers5(model)
    vision = config["vision_cfg"]
    grid = vision["image_size"] // vision["patch_size"]
    rope = VisionRotaryEmbeddingFast(dim=vision["head_width"] // 2, pt_seq_len=vision["pt_hw_seq_len"],
                                     ft_seq_len=grid if vision.get("intp_freq") else None)
    arrays["rope_cos"], arrays["rope_sin"] = rope.freqs_cos.numpy(), rope.freqs_sin.numpy()

    def pixels(paths: list[str]) -> Any:
        return torch.stack([model.preprocess_val(Image.open(p)) for p in paths])

    for call in req["calls"]:
        name, op = call["name"], call["op"]
        started = time.perf_counter()
        try:
            with torch.no_grad():
                if op == "diagnostics":
                    model.train()
                    tokens = model.img_token_embedding(pixels(call["images"]))
                    meta[name] = {"train_mode_image_tokens": int(tokens.shape[1])}
                    runs = [model.encode(image=call["images"][0]) for _ in range(2)]
                    meta[name]["train_mode_run_diff"] = float((runs[0] - runs[1]).abs().max())
                    model.eval()
                    eval_tokens = model.img_token_embedding(pixels(call["images"]))
                    meta[name]["eval_mode_image_tokens"] = int(eval_tokens.shape[1])
                    continue
                model.eval()
                if op == "text":
                    if call.get("batched"):
                        out = model.encode(text=call["texts"])
                    else:
                        out = torch.cat([model.encode(text=t) for t in call["texts"]])
                elif op == "image":
                    out = torch.cat([model.encode(image=p) for p in call["images"]])
                elif op == "pair":
                    out = torch.cat([model.encode(image=p, text=t) for p, t in zip(call["images"], call["texts"])])
                elif op == "pair_batch":
                    texts = model.tokenizer(call["texts"], return_tensors="pt", padding=True)
                    out = model.encode_mm(pixels(call["images"]), texts)
                elif op == "image_batch":
                    out = model.encode_image(pixels(call["images"]))
                elif op == "tokenize":
                    meta[name] = [model.tokenizer(t)["input_ids"] for t in call["texts"]]
                    continue
                else:
                    raise ValueError(f"unknown op {op!r}")
            meta.setdefault("seconds", {})[name] = time.perf_counter() - started
            arrays[name] = out.numpy()
        except Exception as exc:  # recorded for the tests: the reference's own failures are findings
            meta[name] = {"error": type(exc).__name__, "message": str(exc)[:500]}


# ---------------------------------------------------------------- BGE-M3


class _Log(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _m3(req: dict[str, Any], arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    import numpy as np
    import torch

    log = _Log()
    logging.getLogger("FlagEmbedding").addHandler(log)
    logging.getLogger("FlagEmbedding").setLevel(logging.INFO)
    from FlagEmbedding.inference.embedder.encoder_only.m3 import M3Embedder

    model = M3Embedder(req["model_dir"], use_fp16=False, devices="cpu")
    meta["load_log"] = list(log.lines)
    for call in req["calls"]:
        name, op = call["name"], call["op"]
        started = time.perf_counter()
        try:
            if op == "encode":
                model.truncate_dim = call.get("truncate_dim")
                out = model.encode(call["texts"], batch_size=call.get("batch_size", 256),
                                   max_length=call.get("max_length", 512), return_dense=call.get("dense", True),
                                   return_sparse=call.get("sparse", False),
                                   return_colbert_vecs=call.get("colbert", False))
                if out["dense_vecs"] is not None:
                    arrays[f"{name}.dense"] = np.asarray(out["dense_vecs"])
                for i, weights in enumerate(out["lexical_weights"] or []):
                    ids = sorted(int(k) for k in weights)
                    arrays[f"{name}.sparse_ids.{i}"] = np.array(ids, dtype=np.int64)
                    arrays[f"{name}.sparse_values.{i}"] = np.array([weights[str(k)] for k in ids], dtype=np.float32)
                meta.setdefault("seconds", {})[name] = time.perf_counter() - started
                for i, vecs in enumerate(out["colbert_vecs"] or []):
                    arrays[f"{name}.colbert.{i}"] = np.asarray(vecs)
                meta[name] = {"count": len(call["texts"])}
            elif op == "score":
                model.truncate_dim = None  # compute_score never truncates, but keep the calls independent
                weights = call.get("weights")
                scores = model.compute_score([tuple(p) for p in call["pairs"]], batch_size=call.get("batch_size", 256),
                                             max_query_length=call.get("max_length", 512),
                                             max_passage_length=call.get("max_length", 512),
                                             weights_for_different_modes=weights)
                for key, values in scores.items():
                    arrays[f"{name}.{key}"] = np.asarray(values, dtype=np.float32)
            elif op == "colbert_score":
                model.truncate_dim = None
                q, p = (np.asarray(model.encode(t, return_dense=False, return_colbert_vecs=True)["colbert_vecs"])
                        for t in call["pair"])
                arrays[name] = np.asarray(float(model.colbert_score(q, p)), dtype=np.float32)
            elif op == "tokenize":
                meta[name] = [model.tokenizer(t)["input_ids"] for t in call["texts"]]
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:
            meta[name] = {"error": type(exc).__name__, "message": str(exc)[:500]}
    del torch


# ---------------------------------------------------------------- the image transform


def _transform(req: dict[str, Any], arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    from FlagEmbedding.visual.eva_clip.transform import image_transform
    from PIL import Image

    transform = image_transform(req.get("size", 224), is_train=False)
    for i, path in enumerate(req["images"]):
        try:
            arrays[f"image.{i}"] = transform(Image.open(path)).numpy()
        except Exception as exc:
            meta[f"image.{i}"] = {"error": type(exc).__name__, "message": str(exc)[:500]}


def main() -> None:
    req = json.loads(Path(sys.argv[1]).read_text())
    tasks = req["tasks"]
    roots = {"m3" if t["task"] == "m3" else "visual" for t in tasks}
    if len(roots) != 1:
        raise SystemExit("one process runs either the M3 reference or the visual one (they are two FlagEmbeddings)")
    _setup(req["env"], tasks[0]["task"])
    import numpy as np
    import torch

    torch.manual_seed(0)
    for task in tasks:
        arrays: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        try:
            {"visualized": _visualized, "m3": _m3, "transform": _transform}[task["task"]](task, arrays, meta)
        except Exception:
            meta["fatal"] = traceback.format_exc()[-4000:]
        out = Path(task["out"])
        np.savez(out.with_suffix(".npz"), **{re.sub(r"[^\w.+-]", "_", k): v for k, v in arrays.items()})
        out.with_suffix(".json").write_text(json.dumps(meta, default=str))


if __name__ == "__main__":
    main()
