"""Mixed precision and the device option (issue 34, item 4): bf16 autocast trains on a CPU, resumes exactly, and its
model tags as the fp32 one does within the tolerance stated below."""
import pytest, torch
from fastai.callback.core import Callback
from contproto_fastai.config import RunConfig, ConfigError
from contproto_fastai.run import Run
import contproto_fastai.run as run_mod
from contproto_fastai.testing import toy_files

# bf16 keeps 8 bits of mantissa, so two toy runs (teacher 2 + student 2 epochs, same seed) drift apart. Measured here
# (2-core CPU, torch 2.14.1): mean |Δp| over the test spans' class probabilities 0.011, max 0.12, argmax agreement
# 0.994, target F1 equal. Asserted with margin: mean |Δp| < 0.03, agreement ≥ 0.97, F1 within 5 points.
PROB_TOL, AGREE_MIN, F1_TOL = 0.03, 0.97, 0.05


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp('prec')
    files, tiny = toy_files(d, n_src=120, n_dev=30, n_tgt=60, n_test=30)
    return d, files, tiny


def _cfg(toy, out, **kw):
    d, files, tiny = toy
    return RunConfig(**{**dict(files, model=tiny, epochs=2, teacher_epochs=2, lr=3e-3, dropout=0.1, quiet=True, out=str(out),
                               checkpoint_every=1, device='cpu'), **kw})


@pytest.fixture(scope='module')
def runs(toy, tmp_path_factory):
    d = tmp_path_factory.mktemp('runs')
    return {p: (Run(_cfg(toy, d/p, precision=p)).fit(), d/p) for p in ('fp32', 'bf16')}


def test_bf16_autocasts_the_encoder_on_a_cpu(toy, tmp_path, monkeypatch):
    "The encoder's linear layers compute in bfloat16 while the teacher trains (autocast on the CPU, not CUDA's alone)."
    from contproto_fastai import learner as L
    seen = []
    real = L.span_learner
    def spy(model, *a, **k):
        lin = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear))
        lin.register_forward_hook(lambda m, i, o: seen.append((m.training, o.dtype)))
        return real(model, *a, **k)
    monkeypatch.setattr(L, 'span_learner', spy)
    Run(_cfg(toy, tmp_path/'r', precision='bf16', epochs=0, teacher_epochs=1)).fit()
    assert (True, torch.bfloat16) in seen                      # training steps: bf16
    assert (False, torch.float32) in seen                      # scoring and pseudo-labelling: fp32


def test_bf16_tags_as_fp32_does(runs):
    from contproto_fastai.predict import load_predictor
    from contproto_fastai.evaluate import span_probs
    (r32, d32), (r16, d16) = runs['fp32'], runs['bf16']
    assert r16.finished
    p32, p16 = load_predictor(d32/'model', device='cpu'), load_predictor(d16/'model', device='cpu')
    from contproto_fastai.data import encode
    from contproto_fastai.corpus import read_conll, Sentence
    sents = [Sentence(s.tokens) for s in read_conll(r32.config['tgt_test'])]
    exs, _ = encode(sents, p32.tokenizer, None, p32.max_span_len, p32.max_len)
    a, b = torch.cat(p32.span_probs(exs)), torch.cat(p16.span_probs(exs))
    diff, agree = (a - b).abs().mean().item(), (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    print(f"bf16 vs fp32: mean |Δp| {diff:.4f}, max {(a - b).abs().max().item():.4f}, argmax agreement {agree:.4f}, "
          f"F1 {r32['student']['f1']:.4f} vs {r16['student']['f1']:.4f}")
    assert diff < PROB_TOL and agree >= AGREE_MIN and abs(r32['student']['f1'] - r16['student']['f1']) <= F1_TOL


class _Interrupt(Callback):
    "Stops the student in its second epoch, after a checkpoint (as a kill would)."
    order = 100
    def after_batch(self):
        if self.training and self.epoch == 1 and self.iter == 2: raise KeyboardInterrupt


def test_bf16_resumes_exactly(toy, runs, tmp_path, monkeypatch):
    ref = runs['bf16'][0]
    real = run_mod.fit_resumable
    first = [True]
    def stopping(learn, epochs, lr, fname, *a, **k):
        if fname == 'student' and first[0]: learn.add_cb(_Interrupt()); first[0] = False
        return real(learn, epochs, lr, fname, *a, **k)
    monkeypatch.setattr(run_mod, 'fit_resumable', stopping)
    with pytest.raises(KeyboardInterrupt): Run(_cfg(toy, tmp_path/'r', precision='bf16')).fit()
    res = Run.resume(tmp_path/'r').fit()
    assert res['student'] == ref['student'] and res['student_history'] == ref['student_history']


def test_device_option_is_checked():
    with pytest.raises(ConfigError, match='--device'): RunConfig(src_train='a', src_dev='b', tgt_train='c', device='cuda:99')
    with pytest.raises(ConfigError, match="--precision must be one of"): RunConfig(src_train='a', src_dev='b', tgt_train='c', precision='fp8')
