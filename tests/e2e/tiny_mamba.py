"""Writes a tiny random-weight Mamba GGUF (a recurrent model, 3M parameters) with the default
model's tokenizer, for the tests of recurrent models: `python tiny_mamba.py SRC.gguf OUT.gguf`."""

import sys

import gguf
import numpy as np


def write(src, out, special_tokens=True):
    """`special_tokens=False` leaves out BOS and EOS: a vocabulary that has neither."""
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(out, "mamba")
    n_embd, n_layer, d_inner, d_state, d_conv, dt_rank = 64, 2, 128, 16, 4, 4
    w.add_context_length(2048)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(0)
    w.add_head_count(0)
    w.add_ssm_conv_kernel(d_conv)
    w.add_ssm_inner_size(d_inner)
    w.add_ssm_state_size(d_state)
    w.add_ssm_time_step_rank(dt_rank)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)
    # The default model's tokenizer, so prompts tokenize as usual.
    for name, field in r.fields.items():
        if not name.startswith("tokenizer."):
            continue
        if not special_tokens and name in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.padding_token_id"):
            continue
        if not special_tokens and name == "tokenizer.ggml.model":
            # A BPE vocabulary whose special tokens are only what the file names (none here);
            # gpt2's would default to token 11.
            w.add_string(name, "gemma4")
            continue
        if name == "tokenizer.chat_template":
            w.add_chat_template(str(bytes(field.parts[field.data[0]]), "utf-8"))
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                vals = [str(bytes(field.parts[i]), "utf-8") for i in field.data]
            else:
                vals = [field.parts[i].tolist()[0] for i in field.data]
            w.add_array(name, vals)
        elif vtype == gguf.GGUFValueType.STRING:
            w.add_string(name, str(bytes(field.parts[field.data[0]]), "utf-8"))
        else:
            w.add_key_value(name, field.parts[field.data[0]].tolist()[0], vtype)
    n_vocab = len(r.fields["tokenizer.ggml.tokens"].data)
    rng = np.random.default_rng(0)
    def t(name, *shape, scale=0.02):
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))
    t("token_embd.weight", n_vocab, n_embd)
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        t(p + "ssm_in.weight", 2 * d_inner, n_embd)
        t(p + "ssm_conv1d.weight", d_inner, d_conv)
        t(p + "ssm_conv1d.bias", d_inner)
        t(p + "ssm_x.weight", dt_rank + 2 * d_state, d_inner)
        t(p + "ssm_dt.weight", d_inner, dt_rank)
        t(p + "ssm_dt.bias", d_inner)
        w.add_tensor(p + "ssm_a", -np.ones((d_inner, d_state), dtype=np.float32))
        w.add_tensor(p + "ssm_d", np.ones(d_inner, dtype=np.float32))
        t(p + "ssm_out.weight", n_embd, d_inner)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    write(sys.argv[1], sys.argv[2])
