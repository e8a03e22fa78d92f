"""Build ONNX sentence encoders from raw weights, without PyTorch, and shrink them.

A measurement tool, not part of the app: it made the all-mpnet-base-v2 and
nomic-embed-text-v1.5 encoders that the crisis net was compared on (see
README.md beside this file). Steps::

  python build_onnx.py mpnet  model.safetensors config.json mpnet-fp32.onnx
  python build_onnx.py nomic  model.f16.gguf nomic-fp32.onnx
  python build_onnx.py emb16  mpnet-fp32.onnx mpnet-fp32e16.onnx     # token table as float16
  python build_onnx.py nbits  mpnet-fp32e16.onnx mpnet-q8e16.onnx     # 8-bit blockwise weights

Graph interface (the same as the project's MiniLM model): inputs input_ids,
attention_mask (int64 [batch, sequence]); output last_hidden_state
(float32 [batch, sequence, hidden]). Pooling happens outside.
"""
import json
import math
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class G:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p="t"):
        self.n += 1
        return f"{p}_{self.n}"

    def const(self, arr, p="c"):
        n = self.name(p)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        return n

    def op(self, typ, inputs, p=None, **attrs):
        out = self.name(p or typ.lower())
        self.nodes.append(helper.make_node(typ, inputs, [out], **attrs))
        return out

    # helpers
    def linear(self, x, w, b=None):  # w: [out, in] (torch layout)
        y = self.op("MatMul", [x, self.const(w.T.astype(np.float32), "W")])
        if b is not None:
            y = self.op("Add", [y, self.const(b.astype(np.float32), "B")])
        return y

    def ln(self, x, w, b, eps):
        return self.op("LayerNormalization", [x, self.const(w.astype(np.float32)), self.const(b.astype(np.float32))],
                       axis=-1, epsilon=float(eps))

    def gelu(self, x):  # exact (erf) GELU; ORT fuses it
        e = self.op("Erf", [self.op("Div", [x, self.const(np.array(math.sqrt(2.0), np.float32))])])
        e = self.op("Add", [e, self.const(np.array(1.0, np.float32))])
        return self.op("Mul", [self.op("Mul", [x, e]), self.const(np.array(0.5, np.float32))])

    def heads(self, x, nh, hd):  # [B,S,H] -> [B,nh,S,hd]
        r = self.op("Reshape", [x, self.const(np.array([0, 0, nh, hd], np.int64))])
        return self.op("Transpose", [r], perm=[0, 2, 1, 3])

    def merge(self, x, hidden):  # [B,nh,S,hd] -> [B,S,H]
        t = self.op("Transpose", [x], perm=[0, 2, 1, 3])
        return self.op("Reshape", [t, self.const(np.array([0, 0, hidden], np.int64))])

    def attention(self, q, k, v, nh, hd, hidden, biases):
        qh, kh, vh = self.heads(q, nh, hd), self.heads(k, nh, hd), self.heads(v, nh, hd)
        kt = self.op("Transpose", [kh], perm=[0, 1, 3, 2])
        s = self.op("MatMul", [qh, kt])
        s = self.op("Mul", [s, self.const(np.array(1.0 / math.sqrt(hd), np.float32))])
        for b in biases:
            s = self.op("Add", [s, b])
        p = self.op("Softmax", [s], axis=-1)
        return self.merge(self.op("MatMul", [p, vh]), hidden)

    def mask_bias(self, mask):  # [B,S] int64 -> [B,1,1,S] float additive
        m = self.op("Cast", [mask], to=TensorProto.FLOAT)
        m = self.op("Sub", [self.const(np.array(1.0, np.float32)), m])
        m = self.op("Mul", [m, self.const(np.array(-1e9, np.float32))])
        return self.op("Unsqueeze", [m, self.const(np.array([1, 2], np.int64))])

    def seq_slice(self, table, ids, axes):  # table[:S] (or [:S,:S]) where S = ids.shape[1]
        shape = self.op("Shape", [ids])
        s = self.op("Gather", [shape, self.const(np.array([1], np.int64))], axis=0)
        zeros = self.const(np.zeros(len(axes), np.int64))
        ends = s if len(axes) == 1 else self.op("Concat", [s, s], axis=0)
        return self.op("Slice", [self.const(table), zeros, ends, self.const(np.array(axes, np.int64))])

    def model(self, out, hidden, path, doc):
        inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
                  helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])]
        self.nodes.append(helper.make_node("Identity", [out], ["last_hidden_state"]))
        outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])]
        g = helper.make_graph(self.nodes, "encoder", inputs, outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="embsearch-build")
        m.doc_string = doc
        m.ir_version = 9
        onnx.save(m, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        data = np.memmap(path, np.uint8, "r")
    dt = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[base + a: base + b].tobytes(), dt[v["dtype"]]).reshape(v["shape"]).astype(np.float32) \
            if v["dtype"] != "I64" else np.frombuffer(data[base + a: base + b].tobytes(), np.int64).reshape(v["shape"])
    return out


def mpnet_buckets(n=512, num_buckets=32, max_distance=128):
    ctx = np.arange(n)[:, None]
    mem = np.arange(n)[None, :]
    rel = mem - ctx
    ret = np.zeros_like(rel)
    nn = -rel
    num_buckets //= 2
    ret += (nn < 0).astype(np.int64) * num_buckets
    nn = np.abs(nn)
    max_exact = num_buckets // 2
    is_small = nn < max_exact
    with np.errstate(divide="ignore"):
        large = max_exact + (np.log(np.maximum(nn, 1) / max_exact) / math.log(max_distance / max_exact)
                             * (num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    ret += np.where(is_small, nn, large)
    return ret.astype(np.int64)


def build_mpnet(st_path, cfg_path, out):
    w = read_safetensors(st_path)
    cfg = json.load(open(cfg_path))
    H, nh, L, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["layer_norm_eps"]
    hd = H // nh
    pad = cfg.get("pad_token_id", 1)
    pre = "" if "embeddings.word_embeddings.weight" in w else "mpnet."
    g = G()
    ids, mask = "input_ids", "attention_mask"
    # position ids as in HF create_position_ids_from_input_ids (padding_idx = pad)
    notpad = g.op("Cast", [g.op("Not", [g.op("Equal", [ids, g.const(np.array(pad, np.int64))])])], to=TensorProto.INT64)
    pos = g.op("Add", [g.op("Mul", [g.op("CumSum", [notpad, g.const(np.array(1, np.int64))]), notpad]),
                       g.const(np.array(pad, np.int64))])
    x = g.op("Add", [g.op("Gather", [g.const(w[pre + "embeddings.word_embeddings.weight"]), ids]),
                     g.op("Gather", [g.const(w[pre + "embeddings.position_embeddings.weight"]), pos])])
    x = g.ln(x, w[pre + "embeddings.LayerNorm.weight"], w[pre + "embeddings.LayerNorm.bias"], eps)
    # relative position bias [1, nh, S, S], shared by all layers
    buckets = g.seq_slice(mpnet_buckets(cfg.get("max_position_embeddings", 514)), ids, [0, 1])
    rb = g.op("Gather", [g.const(w[pre + "encoder.relative_attention_bias.weight"]), buckets])  # [S,S,nh]
    rb = g.op("Unsqueeze", [g.op("Transpose", [rb], perm=[2, 0, 1]), g.const(np.array([0], np.int64))])
    mb = g.mask_bias(mask)
    for i in range(L):
        p = f"{pre}encoder.layer.{i}."
        q = g.linear(x, w[p + "attention.attn.q.weight"], w[p + "attention.attn.q.bias"])
        k = g.linear(x, w[p + "attention.attn.k.weight"], w[p + "attention.attn.k.bias"])
        v = g.linear(x, w[p + "attention.attn.v.weight"], w[p + "attention.attn.v.bias"])
        a = g.attention(q, k, v, nh, hd, H, [rb, mb])
        a = g.linear(a, w[p + "attention.attn.o.weight"], w[p + "attention.attn.o.bias"])
        x = g.ln(g.op("Add", [a, x]), w[p + "attention.LayerNorm.weight"], w[p + "attention.LayerNorm.bias"], eps)
        f = g.gelu(g.linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]))
        f = g.linear(f, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
        x = g.ln(g.op("Add", [f, x]), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    g.model(x, H, out, "all-mpnet-base-v2 encoder built from safetensors; mean-pool last_hidden_state, then L2-normalise")


def build_nomic(gguf_path, out):
    from gguf import GGUFReader
    r = GGUFReader(gguf_path)
    f = r.fields
    arch = f["general.architecture"].contents()
    H = f[f"{arch}.embedding_length"].contents()
    nh = f[f"{arch}.attention.head_count"].contents()
    L = f[f"{arch}.block_count"].contents()
    eps = f[f"{arch}.attention.layer_norm_epsilon"].contents()
    base = f[f"{arch}.rope.freq_base"].contents()
    ctx = f[f"{arch}.context_length"].contents()
    hd = H // nh
    w = {t.name: np.array(t.data).astype(np.float32).reshape([int(s) for s in reversed(t.shape.tolist())]) for t in r.tensors}
    g = G()
    ids, mask = "input_ids", "attention_mask"
    x = g.op("Add", [g.op("Gather", [g.const(w["token_embd.weight"]), ids]), g.const(w["token_types.weight"][0])])
    x = g.ln(x, w["token_embd_norm.weight"], w["token_embd_norm.bias"], eps)
    # NEOX rotary tables [S, hd] broadcast over [B, nh, S, hd]
    inv = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(ctx, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], 1).astype(np.float32)
    sin = np.concatenate([np.sin(ang), np.sin(ang)], 1).astype(np.float32)
    cos_s, sin_s = g.seq_slice(cos, ids, [0]), g.seq_slice(sin, ids, [0])
    half = hd // 2

    def rope(t):  # t [B,nh,S,hd]
        t1 = g.op("Slice", [t, g.const(np.array([0], np.int64)), g.const(np.array([half], np.int64)), g.const(np.array([3], np.int64))])
        t2 = g.op("Slice", [t, g.const(np.array([half], np.int64)), g.const(np.array([hd], np.int64)), g.const(np.array([3], np.int64))])
        rot = g.op("Concat", [g.op("Neg", [t2]), t1], axis=3)
        return g.op("Add", [g.op("Mul", [t, cos_s]), g.op("Mul", [rot, sin_s])])

    mb = g.mask_bias(mask)
    for i in range(L):
        p = f"blk.{i}."
        qkv = g.linear(x, w[p + "attn_qkv.weight"])
        q = g.op("Slice", [qkv, g.const(np.array([0], np.int64)), g.const(np.array([H], np.int64)), g.const(np.array([2], np.int64))])
        k = g.op("Slice", [qkv, g.const(np.array([H], np.int64)), g.const(np.array([2 * H], np.int64)), g.const(np.array([2], np.int64))])
        v = g.op("Slice", [qkv, g.const(np.array([2 * H], np.int64)), g.const(np.array([3 * H], np.int64)), g.const(np.array([2], np.int64))])
        qh, kh, vh = rope(g.heads(q, nh, hd)), rope(g.heads(k, nh, hd)), g.heads(v, nh, hd)
        s = g.op("MatMul", [qh, g.op("Transpose", [kh], perm=[0, 1, 3, 2])])
        s = g.op("Add", [g.op("Mul", [s, g.const(np.array(1.0 / math.sqrt(hd), np.float32))]), mb])
        a = g.merge(g.op("MatMul", [g.op("Softmax", [s], axis=-1), vh]), H)
        a = g.linear(a, w[p + "attn_output.weight"])
        x = g.ln(g.op("Add", [a, x]), w[p + "attn_output_norm.weight"], w[p + "attn_output_norm.bias"], eps)
        up = g.linear(x, w[p + "ffn_up.weight"])
        gate = g.linear(x, w[p + "ffn_gate.weight"])
        silu = g.op("Mul", [gate, g.op("Sigmoid", [gate])])
        ff = g.linear(g.op("Mul", [up, silu]), w[p + "ffn_down.weight"])
        x = g.ln(g.op("Add", [ff, x]), w[p + "layer_output_norm.weight"], w[p + "layer_output_norm.bias"], eps)
    g.model(x, H, out, f"{f['general.name'].contents()} encoder built from GGUF; mean-pool last_hidden_state, then L2-normalise")


def quantize_nbits(src, dst, bits=4, block=32, acc=4, gather=False):
    """Blockwise weight-only quantization (MatMulNBits); activations stay float unless acc=4."""
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer
    m = onnx.load(src)
    ops = ("MatMul", "Gather") if gather else ("MatMul",)
    cfg = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, accuracy_level=acc, bits=bits,
                                       op_types_to_quantize=ops, quant_axes=(("MatMul", 0), ("Gather", 1)))
    q = MatMulNBitsQuantizer(m, bits=bits, block_size=block, is_symmetric=True, accuracy_level=acc,
                             op_types_to_quantize=ops, quant_axes=(("MatMul", 0), ("Gather", 1)), algo_config=cfg)
    q.process()
    q.model.save_model_to_file(dst, False)


def embeddings_fp16(src, dst, min_size=1_000_000):
    """Store big Gather tables (token embeddings) as float16, cast back to float after the lookup."""
    m = onnx.load(src)
    inits = {i.name: i for i in m.graph.initializer}
    new_nodes = []
    for n in m.graph.node:
        new_nodes.append(n)
        if n.op_type == "Gather" and n.input[0] in inits:
            t = inits[n.input[0]]
            a = numpy_helper.to_array(t)
            if a.size >= min_size and a.dtype == np.float32:
                t.CopyFrom(numpy_helper.from_array(a.astype(np.float16), t.name))
                out = n.output[0]
                n.output[0] = out + "_f16"
                new_nodes.append(helper.make_node("Cast", [out + "_f16"], [out], to=TensorProto.FLOAT))
    del m.graph.node[:]
    m.graph.node.extend(new_nodes)
    onnx.save(m, dst)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("mpnet", help="all-mpnet-base-v2 safetensors -> fp32 ONNX")
    p.add_argument("weights"), p.add_argument("config"), p.add_argument("out")
    p = sub.add_parser("nomic", help="nomic-embed-text-v1.5 GGUF -> fp32 ONNX")
    p.add_argument("gguf"), p.add_argument("out")
    p = sub.add_parser("emb16", help="store the token-embedding table as float16")
    p.add_argument("src"), p.add_argument("out")
    p = sub.add_parser("nbits", help="blockwise weight-only quantization (MatMulNBits)")
    p.add_argument("src"), p.add_argument("out")
    p.add_argument("--bits", type=int, default=8), p.add_argument("--block", type=int, default=32)
    p.add_argument("--accuracy-level", type=int, default=4)
    a = ap.parse_args()
    if a.step == "mpnet":
        build_mpnet(a.weights, a.config, a.out)
    elif a.step == "nomic":
        build_nomic(a.gguf, a.out)
    elif a.step == "emb16":
        embeddings_fp16(a.src, a.out)
    else:
        quantize_nbits(a.src, a.out, bits=a.bits, block=a.block, acc=a.accuracy_level)


if __name__ == "__main__":
    main()
