"""Training: `model` (the GPT, nanoGPT's names) → `checkpoint` (nanoGPT-compatible ckpt.pt) → `loader` (token
windows over a dataset's shards) → `trainer` (the step loop, evaluation, `wikigpt train` / `sample`). The Triton
kernels the model can use are in `wikigpt.kernels`."""
