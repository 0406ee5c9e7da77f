"Two CPU processes (gloo, launched by torchrun) match a single-process run on the same global batch."
import os, subprocess, sys
from pathlib import Path
import torch

WORKER = Path(__file__).with_name('dist_worker.py')
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}


def test_two_processes_match_single_process(tmp_path):
    r = subprocess.run([sys.executable, str(WORKER), str(tmp_path/'one')], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29517',
                        str(WORKER), str(tmp_path/'two')], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = torch.load(tmp_path/'one'/'final.pt', weights_only=False), torch.load(tmp_path/'two'/'final.pt', weights_only=False)
    other = torch.load(tmp_path/'two'/'final_rank1.pt', weights_only=False)
    for k in ('prototypes', 'margins'):
        assert torch.allclose(one['state'][k], two['state'][k], atol=1e-4), (k, (one['state'][k] - two['state'][k]).abs().max())
        assert torch.equal(two['state'][k], other['state'][k]), k                        # every process holds the same
    p1, p2 = one['state']['pseudo_labels']['probs'], two['state']['pseudo_labels']['probs']
    assert torch.allclose(p1, p2, atol=1e-4), (p1 - p2).abs().max()
    assert torch.equal(p2, other['state']['pseudo_labels']['probs'])
    assert (p1 - one['initial']).abs().max() > 1e-2                                     # the labels were really refined
    for k, v in one['model'].items(): assert torch.allclose(v, two['model'][k], atol=1e-4), k


def test_contproto_fit_under_torchrun(tmp_path):
    "The console script runs under torchrun with 2 CPU processes; process 0 writes the results."
    import json, shutil
    import pytest
    from contproto_fastai.testing import toy_files
    exe = shutil.which('contproto-fit')
    if exe is None: pytest.skip("contproto-fit not on PATH")
    f, model = toy_files(tmp_path, n_src=128, n_dev=30, n_tgt=64, n_test=30)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29518', exe,
           '--src-train', str(f['src_train']), '--src-dev', str(f['src_dev']), '--tgt-train', str(f['tgt_train']),
           '--tgt-test', str(f['tgt_test']), '--model', model, '--epochs', '2', '--bs', '8', '--lr', '3e-3', '--dropout', '0.1',
           '--out', str(tmp_path/'run'), '--quiet']
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path/'run'/'results.json').read_text())
    assert res['processes'] == 2 and res['student']['f1'] > 0.3
    assert r.stdout.count('Target test set') == 1                  # one results table, from process 0
