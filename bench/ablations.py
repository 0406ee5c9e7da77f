"""Run every Table 3 preset (plus vanilla self-training) as a `contproto-fit` student on one source/target pair,
reusing one teacher, and tabulate target test F1 next to the paper's Table 3 deltas.

    python bench/ablations.py --teacher-from runs/en-de -- --data ../shared/data/conll --src en --tgt de --model minilm \
        --epochs 2 --lr 5e-5 --src-limit 2000 --dev-limit 1000 --tgt-limit 4000

Everything after `--` is passed to each `contproto-fit` call (with `--ablation`, `--out`, `--teacher-from` added).
Writes bench/results/ablations_<name>.{json,md} and prints the table."""
import argparse, json, os, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ['vanilla', 'no_proto_no_cl', 'no_proto', 'contproto', 'no_reg', 'fixed_margin', 'proto_no_cl']
PAPER_DE = dict(contproto=76.41, no_proto=74.87, no_proto_no_cl=74.17, no_reg=76.23, fixed_margin=74.65, proto_no_cl=72.59)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--teacher-from', required=True); p.add_argument('--name', default='en-de-minilm')
    p.add_argument('--runs', default=str(ROOT/'runs'/'ablations')); p.add_argument('--presets', default=','.join(PRESETS))
    p.add_argument('rest', nargs=argparse.REMAINDER)
    a = p.parse_args()
    rest = a.rest[1:] if a.rest[:1] == ['--'] else a.rest
    exe = shutil.which('contproto-fit') or sys.exit("contproto-fit not found: pip install -e .")
    rows = {}
    for preset in a.presets.split(','):
        out = Path(a.runs)/a.name/preset
        if (out/'results.json').exists() and 'student' in json.loads((out/'results.json').read_text()):
            print(f"{preset}: already done ({out})", flush=True)
        else:
            cmd = [exe, *rest, '--ablation', preset, '--teacher-from', a.teacher_from, '--out', str(out), '--quiet']
            print(' '.join(cmd), flush=True); t = time.time()
            r = subprocess.run(cmd)
            if r.returncode: sys.exit(f"{preset} failed (exit {r.returncode})")
            print(f"{preset}: {time.time() - t:.0f}s", flush=True)
        rows[preset] = json.loads((out/'results.json').read_text())
    teacher = next(iter(rows.values()))['teacher']
    lines = [f"# Table 3 presets, {a.name}", "", f"Command: `python bench/ablations.py --teacher-from {a.teacher_from} -- {' '.join(rest)}`", "",
             f"Machine: {next(iter(rows.values()))['machine']}", "",
             "| student | test P | test R | test F1 | span F1 | pseudo-label F1 (start → end) | student wall time | paper De F1 |",
             "|---|---|---|---|---|---|---|---|",
             f"| teacher (zero-shot) | {100*teacher['precision']:.2f} | {100*teacher['recall']:.2f} | {100*teacher['f1']:.2f} | {100*teacher['span_f1']:.2f} | | | |"]
    for preset, r in rows.items():
        s, c = r['student'], r.get('pseudo_label_f1_curve') or []
        curve = f"{100*c[0]:.2f} → {100*c[-1]:.2f}" if c and c[0] is not None else ''
        lines.append(f"| {preset} | {100*s['precision']:.2f} | {100*s['recall']:.2f} | {100*s['f1']:.2f} | {100*s['span_f1']:.2f} | {curve} | "
                     f"{r['times']['student']:.0f}s | {PAPER_DE.get(preset, '')} |")
    md = '\n'.join(lines) + '\n'
    res_dir = ROOT/'bench'/'results'; res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir/f'ablations_{a.name}.md').write_text(md)
    (res_dir/f'ablations_{a.name}.json').write_text(json.dumps(dict(command=sys.argv, rows=rows), indent=2))
    print(md)

if __name__ == '__main__': main()
