# Sourced by the GPU scripts (bench/gpu_de.sh, bench/gpu_schedule.sh), run from the repository root with P (the pack that
# `python bench/device_pack.py` writes), SRC, TGT and OUT (an existing folder) set. Installs the pack's wheels, stops unless torch sees a GPU
# (DEVICE_CHECK=1: a check of the script on a CPU, which trains there), writes the GPU's name to $OUT/gpu.txt, points
# load_encoder('e5-small') at the pack's pruned model file and unpacks the data into $data. CODE (default: this checkout)
# is the folder whose `contproto_fastai` is imported.
[ -f "$P/e5-small.bin" ] || { echo "no $P/e5-small.bin: run python bench/device_pack.py first" >&2; exit 2; }
site=/tmp/site; [ -n "${DEVICE_CHECK:-}" ] && site=/tmp/site-check
rm -rf "$site"; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$P"/whl/*.whl || exit 1
export PYTHONPATH=$site:${CODE:-$PWD}
if [ -z "${DEVICE_CHECK:-}" ]; then
    python3 -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' || { echo "torch sees no GPU: stopping rather than training on the CPU" >&2; exit 3; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
fi
export CONTPROTO_E5_FILE=$P/e5-small.bin CONTPROTO_CACHE=/tmp/contproto-cache PYTHONUNBUFFERED=1
export PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false
data=/tmp/contproto-data
python3 - "$P/data" "$data" "$SRC" "$TGT" <<'PY' || exit 2
import lzma, sys
from pathlib import Path
src, dst, *langs = sys.argv[1:]
packed = list(Path(src).glob('*/*/*.xz'))
for f in packed:
    d = Path(dst)/f.parent.name; d.mkdir(parents=True, exist_ok=True); (d/f.stem).write_bytes(lzma.decompress(f.read_bytes()))
need = [Path(dst)/l/n for l, ns in zip(langs, (('train.txt', 'dev.txt'), ('train.txt', 'test.txt'))) for n in ns]
missing = [str(p) for p in need if not p.exists()]
if missing: sys.exit(f"not in the pack: {missing} (python bench/device_pack.py --src {langs[0]} --tgt {langs[1]})")
PY
(cd /tmp && python3 -c 'import torch, transformers, fastai, contproto_fastai; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__, "fastai", fastai.__version__, "contproto_fastai", contproto_fastai.__file__)')   # from /tmp: the checkout's folder is not put ahead of PYTHONPATH
