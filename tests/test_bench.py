"""Smoke runs of the benchmark scripts (tiny model, a step or two): they run, and what they write is what they claim
to have measured. No timing is asserted here; the real measurements are made by hand (see bench/)."""
import importlib.util, json, shutil
import pytest


def _load(repo_root, name):
    spec = importlib.util.spec_from_file_location(f'bench_{name}', repo_root/'bench'/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_speed_smoke(repo_root, tmp_path):
    speed = _load(repo_root, 'speed')
    out = tmp_path/'speed.json'
    r = speed.main(['--model', 'tiny', '--steps', '1', '--warmup', '1', '--sentences', '4', '--in-process', '--device', 'cpu',
                    '--lengths', '6,12', '--batches', '3', '--inference-limit', '24', '--supcon-sizes', '64,300',
                    '--one-matrix-max', '64', '--out', str(out)])
    assert json.loads(out.read_text())['summary'] == r['summary']
    full = speed.full()
    assert set(r['results']) >= {'vanilla', 'double_forward_floor', 'contproto', *(f'contproto_without_{c}' for c in full)}
    assert set(r['summary']['callback_cost_s']) == set(full)
    assert all(v['median_s'] > 0 and v['steps'] == 1 for v in r['results'].values())
    # every configuration sees the same batch, and every step all of it (both sides whole)
    assert len({v['spans'] for v in r['results'].values()}) == 1
    assert all(v['spans_seen'] == [v['spans']] for v in {**r['results'], **r['scaling']}.values())
    # scaling: sentences of exactly L words give n*(4L-6) spans per side (widths 1..4), so the grid is what it says
    for v in r['scaling'].values():
        assert v['spans'] == 2 * v['n'] * (4 * v['words'] - 6), v
    assert {(v['n'], v['words']) for v in r['scaling'].values()} == {(8, 6), (8, 12), (3, 32)}
    # supcon: both ways up to --one-matrix-max, only the bounded default above it
    assert sorted((v['n'], v['one_matrix']) for v in r['supcon']) == [(64, False), (64, True), (300, False)]
    assert all(v['seconds'] > 0 for v in r['supcon'])
    # embeddings: vanilla, floor and ContProto, each frozen and trainable, on the same batch
    assert {(v['config'], v['embeddings']) for v in r['embeddings'].values()} == {
        (c, e) for c in ('vanilla', 'double_forward_floor', 'contproto') for e in ('frozen', 'trainable')}
    assert all(v['model_kw']['freeze_embeddings'] == (v['embeddings'] == 'frozen') for v in r['embeddings'].values())
    inf = r['inference']
    assert inf['sentences'] == 24 and inf['sentences_per_s'] > 0
    assert r['machine']['cores'] >= 1 and r['machine']['torch']
    # --update remeasures one part and keeps the others, each with the command that measured it
    r2 = speed.main(['--model', 'tiny', '--parts', 'inference', '--inference-limit', '8', '--device', 'cpu', '--update', '--out', str(out)])
    js = json.loads(out.read_text())
    assert js['results'] == r['results'] and js['scaling'] == r['scaling'] and js['inference']['sentences'] == 8 == r2['inference']['sentences']
    assert '--inference-limit 8' in js['commands']['inference'] and '--inference-limit 24' in js['commands']['callbacks']
    # the markdown tables are written beside the JSON from the same rows, and --tables rewrites them from the JSON alone
    md = out.with_suffix('.md').read_text()
    assert md.count('| configuration |') == 2 and '| 3 × 32 |' in md and '| 8 |' in md.split('**Inference')[1]
    out.with_suffix('.md').unlink(); speed.main(['--tables', '--out', str(out)])
    assert out.with_suffix('.md').read_text() == md


def test_reproduce_smoke(repo_root, tmp_path):
    rep = _load(repo_root, 'reproduce')
    args = ['--smoke', '--name', 'smoke', '--seeds', '0', '--rows', 'contproto,ceiling', '--results', str(tmp_path), '--runs', str(tmp_path/'runs'),
            '--', '--embeddings', 'frozen']     # as e5-small: its checkpoints leave the frozen embeddings out
    runs = rep.main(['--keep-checkpoints'] + args)
    import torch
    sd = tmp_path/'runs'/'smoke'/'seed0'
    ck = torch.load(sd/'contproto'/'student_ckpt.pt', weights_only=False)
    assert not any('word_embeddings' in k for k in ck['model'])          # the diagnostics below read this checkpoint
    assert set(runs[0]) == {'vanilla', 'contproto', 'ceiling'}
    md = (tmp_path/'reproduce_smoke.md').read_text()
    for row in ('zero-shot (teacher)', '| vanilla | 1 |', '| contproto | 1 |', '| ceiling (target gold train) | 1 |'): assert row in md
    js = json.loads((tmp_path/'reproduce_smoke.json').read_text())
    assert {(r['seed'], r['row']) for r in js['runs']} == {(0, 'vanilla'), (0, 'contproto'), (0, 'ceiling')}
    # the ceiling: teacher only, trained on the target's own train file (gold labels), scored on the same test set
    ceil = next(r for r in js['runs'] if r['row'] == 'ceiling')
    assert ceil['student'] is None and ceil['config']['epochs'] == 0 and ceil['config']['src_train'] == ceil['config']['tgt_train']
    assert ceil['config']['tgt_test'] == js['runs'][0]['config']['tgt_test']
    # the why-table: refinement's changes against the gold tags add up, prototype statistics only where prototypes exist
    d = {r['row']: r['diagnostics'] for r in js['runs'] if r['row'] != 'ceiling'}
    assert d['vanilla']['changed'] == 0 and 'prototype_accuracy_entity' not in d['vanilla']
    c = d['contproto']
    assert c['fixed'] + c['broken'] <= c['changed'] == c['entity_to_o'] + c['o_to_entity'] + c['entity_to_entity']
    assert 0 <= c['prototype_accuracy_entity'] <= 1 and set(c['margins']) == set(js['runs'][1]['teacher']['per_type']) | {'O'}
    assert 'entities movable to truth' in md and 'kept epoch (dev F1)' in md
    # both students reuse the seed's one teacher: same zero-shot score
    assert js['runs'][0]['teacher'] == js['runs'][1]['teacher']
    assert (tmp_path/'reproduce_smoke_pseudo_f1.png').stat().st_size > 0
    # a second call finds every run finished and trains nothing
    done = sorted(tmp_path.glob('runs/smoke/seed0/*/results.json')); assert len(done) == 3
    stamps = [f.stat().st_mtime_ns for f in done]
    again = rep.main(args)
    assert again[0] == runs[0] and [f.stat().st_mtime_ns for f in done] == stamps
    # without --keep-checkpoints finished runs lose their resume checkpoints (0.6 GB each with e5-small); the
    # teacher's weights and pseudo labels stay for the students that start from them, and each student's export
    assert not list(sd.glob('*/*_ckpt.pt')) and not (sd/'contproto'/'models'/'student.pth').exists()
    assert (sd/'vanilla'/'models'/'teacher.pth').exists() and (sd/'vanilla'/'pseudo_labels.pt').exists() and (sd/'contproto'/'model').is_dir()
    # wall and CPU seconds: whole for runs nobody interrupted; a run whose time is not known whole is left out (n/a)
    assert all(not r['times_unknown'] and r['cpu_time_s']['total'] > 0 for r in js['runs'])
    cont_row = lambda: next(l for l in (tmp_path/'reproduce_smoke.md').read_text().splitlines() if l.startswith('| contproto |')).split(' | ')
    wall, cpu = cont_row()[7:9]
    assert float(wall) == round(js['runs'][1]['wall_time_s']['student']) and float(cpu) == round(js['runs'][1]['cpu_time_s']['student'])
    f = tmp_path/'runs'/'smoke'/'seed0'/'contproto'/'results.json'
    f.write_text(json.dumps({**json.loads(f.read_text()), 'times_unknown': ['student', 'total']}))
    rep.main(args)
    assert cont_row()[7:9] == ['n/a', 'n/a'] and cont_row()[2] != 'n/a'


def test_reproduce_plan(repo_root):
    plan = _load(repo_root, 'reproduce').plan
    # vanilla always runs (each seed's teacher); main rows for every seed first, ablations only for --ablation-seeds
    assert plan([0, 1], ['contproto', 'no_reg'], [0]) == [(0, 'vanilla'), (0, 'contproto'), (1, 'vanilla'), (1, 'contproto'), (0, 'no_reg')]
    assert plan([0, 1], ['no_reg'], None, 'seed-first') == [(0, 'vanilla'), (0, 'no_reg'), (1, 'vanilla'), (1, 'no_reg')]
    assert plan([2], ['contproto']) == [(2, 'vanilla'), (2, 'contproto')]
    # the ceiling after the main rows, for the first seed unless told
    assert plan([0, 1], ['contproto', 'ceiling', 'no_reg'], [1]) == [(0, 'vanilla'), (0, 'contproto'), (1, 'vanilla'), (1, 'contproto'), (0, 'ceiling'), (1, 'no_reg')]
    assert plan([0, 1], ['ceiling'], None, 'main-first', [0, 1]) == [(0, 'vanilla'), (1, 'vanilla'), (0, 'ceiling'), (1, 'ceiling')]


def test_reproduce_seconds(repo_root):
    "Wall/CPU columns: runs of different thread counts are averaged apart; unknown times left out, counted as (k of n)."
    rep = _load(repo_root, 'reproduce')
    run = lambda t, s, unknown=(): dict(times=dict(student=s), cpu_times=dict(student=s), times_unknown=list(unknown),
                                        machine=dict(cpu='x', threads=t))
    assert rep.seconds([run(2, 100), run(2, 200)], 'student') == '150'
    assert rep.seconds([run(2, 100), run(2, 200, ['student'])], 'student') == '100 (1 of 2)'
    assert rep.seconds([run(2, 100), run(1, 300), run(1, 500)], 'student', 'cpu_times') == '100 (2 threads) · 400 (1 thread)'
    assert rep.seconds([run(2, 100), run(1, 300, ['student'])], 'student') == '100 (2 threads) · n/a (1 thread)'
    # the epoch whose weights a run scores: the first best source dev F1 (a later epoch must beat it)
    assert rep.kept_epoch([{'span_f1': .89}, {'span_f1': .88}]) == 0 and rep.kept_epoch([{'span_f1': .8}, {'span_f1': .9}]) == 1
    assert rep.kept_epoch([{'span_f1': .9}, {'span_f1': .9}]) == 0 and rep.kept_epoch(None) is None
    assert rep.machines({0: {'a': run(2, 1), 'b': run(2, 1)}}) == 'Machine: {"cpu": "x", "threads": 2}'
    assert rep.machines({0: {'a': run(2, 1)}, 1: {'a': run(1, 1), 'b': run(1, 1)}}) == \
        'Machines (runs): {"cpu": "x", "threads": 1} (2); {"cpu": "x", "threads": 2} (1)'


def test_reproduce_args(repo_root, tmp_path):
    "The grid reads contproto-fit's options in either spelling; the ceiling trains on the target train file, teacher only."
    rep = _load(repo_root, 'reproduce')
    for lang in ('en', 'hi'):
        (tmp_path/'D'/lang).mkdir(parents=True)
        for split in ('train', 'dev', 'test'): (tmp_path/'D'/lang/f'{split}.txt').write_text('a\tB-PER\n')
    D = tmp_path/'D'
    rest = ['--data', str(D), '--tgt', 'hi', '--tgt_limit', '5', '--teacher-epochs=3', '--epochs', '2']
    cfg = rep.fit_config(rest)                               # contproto-fit's own parser, either spelling
    assert (cfg.tgt_limit, cfg.teacher_epochs, cfg.epochs, cfg.tgt_test) == (5, 3, 2, str((D/'hi'/'test.txt').resolve()))
    assert rep._target(rest) == 'hi'
    c = rep.fit_config(rep.ceiling_args(rest))
    assert (c.src_train, c.epochs, c.teacher_epochs) == (str((D/'hi'/'train.txt').resolve()), 0, 3)
    f = tmp_path/'t.txt'
    f.write_text('a B-PER\nb I-PER\nc I-PER\nd O\ne B-LOC\n\nf S-ORG\n'.replace(' ', '\t'))
    assert rep.long_entity_share(f, 2) == pytest.approx(1/3) and rep.long_entity_share(f, 3) == 0


def test_recipe_smoke(repo_root, tmp_path):
    "bench/recipe.py on toy files with a tiny encoder: teacher-only runs, one table row per recipe, options reach the runs."
    rec, rep = _load(repo_root, 'recipe'), _load(repo_root, 'reproduce')
    toy = rep.smoke_args(tmp_path/'toy')
    args = ['--name', 'smoke', '--seeds', '0', '--rows', 'e5-heads-1e-3,e5-mlp,e5-no-norm', '--results', str(tmp_path), '--runs', str(tmp_path/'runs'),
            '--in-process', '--', *toy, '--teacher-epochs', '1']
    rec.main(args)
    js = json.loads((tmp_path/'recipe_smoke.json').read_text())
    by = {r['row']: r for r in js['runs']}
    assert set(by) == {'e5-heads-1e-3', 'e5-mlp', 'e5-no-norm'}
    assert all(r['config']['epochs'] == 0 and 'student' not in r for r in js['runs'])
    assert by['e5-mlp']['recipe']['head'] == 'mlp' and by['e5-heads-1e-3']['recipe']['head'] == 'linear'
    assert by['e5-no-norm']['recipe']['norm'] is False
    assert json.loads((tmp_path/'runs'/'smoke'/'seed0'/'e5-mlp'/'model'/'config.json').read_text())['head'] == 'mlp'
    md = (tmp_path/'recipe_smoke.md').read_text()
    assert all(f'| {k} |' in md for k in by)


def test_summary_table3(repo_root):
    "Table 3 from grid runs: paired differences to ContProto by seed, and the pairs ordered as in the paper (hand count)."
    summary = _load(repo_root, 'summary')
    run = lambda seed, row, f1: dict(seed=seed, row=row, student={'f1': f1}, teacher={'f1': 0.5})
    # paper (de): contproto 76.41 > no_reg 76.23 > no_proto 74.87 > proto_no_cl 72.59
    runs = [run(0, 'contproto', .70), run(1, 'contproto', .72), run(0, 'no_reg', .69), run(1, 'no_reg', .70),
            run(0, 'no_proto', .71), run(1, 'no_proto', .73), run(0, 'proto_no_cl', .60)]
    lines, d = summary.table3(runs, 'de')
    assert d['order'] == ['no_proto', 'contproto', 'no_reg', 'proto_no_cl']
    assert d['paper_order'] == ['contproto', 'no_reg', 'no_proto', 'proto_no_cl']
    # 6 pairs; ours disagrees with the paper on (contproto, no_proto) and (no_reg, no_proto) only
    assert (d['pairs'], d['pairs_agreeing']) == (6, 4)
    row = next(l for l in lines if l.startswith('| no_reg |'))
    assert '-1.50 ± 0.71' in row and '-0.18' in row          # paired: (69-70, 70-72) -> mean -1.5; paper 76.23-76.41
    assert summary.table3([run(0, 'contproto', .7)], 'de') == ([], None)
    # ContProto's seeds without ablation runs stay out: its mean is over the same seeds as the ablations'
    lines, d = summary.table3(runs + [run(2, 'contproto', .10)], 'de')
    assert d['f1']['contproto'] == [70, 72] and d['order'][1] == 'contproto' and 'Seeds 0, 1:' in '\n'.join(lines)


def test_reproduce_done(repo_root, tmp_path):
    "A run counts as finished by its final results.json, not by the one written when its teacher is done."
    done, f = _load(repo_root, 'reproduce').done, tmp_path/'results.json'
    assert not done(tmp_path)
    for epochs, keys, finished in ((0, ('teacher', 'times'), False), (0, ('teacher', 'times', 'machine'), True),
                                   (2, ('teacher', 'times', 'machine'), False), (2, ('teacher', 'student', 'times', 'machine'), True)):
        f.write_text(json.dumps(dict(config=dict(epochs=epochs), **{k: {} for k in keys})))
        assert done(tmp_path) == finished, (epochs, keys)


def test_schedule_smoke(repo_root, tmp_path, capsys):
    "bench/schedule.py on toy files: the grid's jobs in dependency order, resumable, and tables with the per-epoch trace."
    runs, res = tmp_path/'runs', tmp_path/'res'
    run = lambda: _load(repo_root, 'schedule').main(['run', '--smoke', '--runs', str(runs), '--results', str(res), '--workers', '2'])
    run()                                       # the smoke grid runs in this process
    js = json.loads((res/'schedule_en-toy.json').read_text())
    rows = sorted((x['seed'], x['row']) for x in js['runs'])
    assert rows == sorted([(0, 'ceiling'), (0, 'contproto_wide')] + [(s, r) for s in (0, 1) for r in ('teacher', 'vanilla', 'contproto', 'glode')])
    by = {(x['seed'], x['row']): x for x in js['runs']}
    for s in (0, 1):
        tr = by[(s, 'contproto')]['trace']
        assert [e['epoch'] for e in tr] == [0, 1, 2] and [e['refined'] for e in tr] == [False, True, True]
        assert all('test' in e for e in tr) and 'votes' in tr[1]
        assert by[(s, 'contproto')]['config']['teacher_from'].endswith(f'seed{s}/teacher')
    assert by[(0, 'contproto_wide')]['target_spans']['max_span_len'] == 5
    md = (res/'schedule_en-toy.md').read_text()
    for needle in ('| contproto | 2 |', '| glode | 2 |', '| contproto − vanilla | 2 |', '## contproto: epoch by epoch', 'zero-shot (teacher)', 'ceiling'):
        assert needle in md, needle
    assert (res/'schedule_en-toy_fig3.png').stat().st_size > 0 and (res/'schedule_en-toy_fig3_rise.png').stat().st_size > 0
    # the summary: paired differences and summed argmax changes, recomputed here from the per-target JSON
    sm = json.loads((res/'schedule_summary.json').read_text())['targets']['toy']
    for s in (0, 1):
        cp, va = by[(s, 'contproto')], by[(s, 'vanilla')]
        assert abs(sm['diffs']['contproto − vanilla'][str(s)]['kept'] - (cp['student']['f1'] - va['student']['f1'])) < 1e-12
        assert sm['rows']['contproto'][str(s)]['moves']['entity_to_o']['n'] == sum(e['moves']['entity_to_o']['n'] for e in cp['trace'])
        assert sm['rows']['contproto'][str(s)]['pseudo_f1'] == [cp['trace'][0]['pseudo']['f1'], cp['trace'][-1]['pseudo']['f1']]  # warm-up, end
        gl = by[(s, 'glode')]
        assert sm['diffs']['glode − contproto'][str(s)] == dict(kept=gl['student']['f1'] - cp['student']['f1'],
                                                                last=gl['trace'][-1]['test']['f1'] - cp['trace'][-1]['test']['f1'])
    assert 'contproto − no_proto' not in sm['diffs']                      # no such row in the smoke grid: no difference made up
    assert '| toy | 2 |' in (res/'schedule_summary.md').read_text()
    assert '| contproto_wide | 5 |' in md and '| contproto | 4 |' in md     # the cost table: each row's target span limit
    assert '| w 0.' in md.split('## glode: epoch by epoch')[1]               # GLoDe's blend weight in its gate column
    # finished runs are skipped: a second call starts nothing
    assert 'start ' in capsys.readouterr().out; run()          # the first call started the jobs, the second none
    out = capsys.readouterr().out
    assert 'start ' not in out, out[-2000:]


def test_schedule_answer_on_hand_built_runs(repo_root):
    """The summary of bench/schedule.py on two seeds of hand-built runs whose numbers all differ: signs, the warm-up and
    last entries of the pseudo-label curve, summed argmax changes, seeds paired only where both rows finished."""
    sch = _load(repo_root, 'schedule')
    mv = lambda n: {k: dict(n=n, fixed=n - 1, broken=1) for k in sch.MOVES}
    def run(kept, pseudo, test, n_moves=0, margins=None):
        "A finished student: kept F1, pseudo-label F1 (teacher's labels, then after each epoch), last-epoch test F1."
        tr = [dict(pseudo=dict(f1=p), span=dict(precision=p / 2, recall=p / 3), test=dict(f1=t), moves=mv(n_moves),
                   margins=margins, refined=i > 0) for i, (p, t) in enumerate(zip(pseudo[1:], test))]
        return dict(student=dict(f1=kept, precision=kept, recall=kept), kept_epoch=1, labels=['O', 'PER'], trace=tr,
                    trace_start=dict(pseudo=dict(f1=pseudo[0]), span=dict(precision=0., recall=0.)))
    teacher = lambda f1: dict(teacher=dict(f1=f1, precision=f1, recall=f1))
    by_seed = {0: dict(teacher=teacher(.50), ceiling=teacher(.80), vanilla=run(.55, [.6, .6, .6, .6], [.5, .52, .54]),
                       contproto=run(.58, [.6, .61, .63, .66], [.5, .55, .57], 2, [.99, .9]),
                       no_proto=run(.56, [.6, .6, .6, .6], [.5, .53, .59])),
               1: dict(teacher=teacher(.40), vanilla=run(.45, [.5] * 4, [.4, .41, .42]),
                       contproto=run(.49, [.5, .5, .52, .57], [.4, .44, .47], 4, [.98, .8]))}
    ans = sch.answer(dict(xx=by_seed), dict(rows=dict(vanilla=[], contproto=[], no_proto=[]), extra={}))['xx']
    cv = ans['diffs']['contproto − vanilla']
    assert sorted(cv) == [0, 1] and cv[0]['kept'] == pytest.approx(.03) and cv[1]['last'] == pytest.approx(.05)
    cn = ans['diffs']['contproto − no_proto']
    assert list(cn) == [0] and cn[0]['kept'] == pytest.approx(.02) and cn[0]['last'] == pytest.approx(-.02)   # seed 1 has no no_proto
    assert ans['rows']['contproto'][1]['pseudo_f1'] == [.5, .57]                                   # after warm-up, after the last epoch
    assert ans['rows']['contproto'][0]['moves']['entity_to_o'] == dict(n=6, fixed=3, broken=3)     # 3 epochs × (2, 1, 1)
    mean = ans['mean']                                                                              # what README's prose quotes, in points
    assert mean['diffs']['contproto-vanilla'] == dict(kept=pytest.approx(3.5), last=pytest.approx(4.0), n=2)
    assert mean['diffs']['contproto-no_proto'] == dict(kept=pytest.approx(2.0), last=pytest.approx(-2.0), n=1)
    assert mean['rise']['contproto'] == pytest.approx(6.0) and mean['rise']['vanilla'] == 0
    assert mean['moves']['contproto']['entity_to_o'] == dict(n=9, fixed=6, broken=3)     # seeds: 3 epochs × (2, 1, 1) and × (4, 3, 1)
    md = sch.answer_table(dict(xx=ans))
    assert ('| xx | 2 | 45.00 ± 7.07 | 80.00 | 53.50 ± 6.36 / 52.00 ± 7.07 | +6.00 ± 1.41 | +3.50 ± 0.71 / +4.00 ± 1.41 (2) | '
            '+2.00 / -2.00 (1) | — | — | — |') in md, md
    assert '| xx | contproto | 2 | 55.50 ± 7.78 → 61.50 ± 6.36 |' in md and '| 9 (6 / 3) | 0.985 ± 0.007; 0.80–0.90 |' in md, md
    # the per-target table's paired differences are the summary's: kept, last, and each row's pseudo-label F1 rise
    tt = sch.target_table('xx', by_seed, 'cmd', dict(rows=dict(vanilla=[], contproto=[], no_proto=[]), extra={}))
    assert '| contproto − vanilla | 2 | 3.50 ± 0.71 | 4.00 ± 1.41 | 6.00 ± 1.41 | 0.00 ± 0.00 |' in tt, tt
    assert '| contproto − no_proto | 1 | 2.00 | -2.00 | 5.00 | 0.00 |' in tt, tt


def test_schedule_jobs(repo_root, tmp_path):
    """bench/schedule.py's grid as jobs: per seed a teacher, the first seed's ceiling on the target's gold train set and
    extra rows, every student after its seed's teacher; bench/factors.py declares the same budget, teacher and students."""
    sch, fac = _load(repo_root, 'schedule'), _load(repo_root, 'factors')
    js = sch.jobs(sch.smoke_grid(tmp_path))
    assert [j.name for j in js[:3]] == ['en-toy/seed0/teacher', 'en-toy/seed0/ceiling', 'en-toy/seed0/vanilla']
    assert {j.name.split('/')[1] for j in js if j.name.endswith('contproto_wide')} == {'seed0'} and len(js) == 10
    assert all(j.after == f"{j.name.rsplit('/', 1)[0]}/teacher" for j in js if j.key[2] not in ('teacher', 'ceiling'))
    ceil = js[1].config
    assert ceil.src_train == ceil.tgt_train and ceil.epochs == 0 and js[0].config.src_train != ceil.src_train
    wide = next(j for j in js if j.key[2] == 'contproto_wide').config
    assert (wide.tgt_max_span_len, wide.ablation, wide.epochs, wide.trace_test, wide.quiet) == (5, 'contproto', 3, True, True)
    assert (fac.BUDGET, fac.TEACHER, fac.STUDENT) == (sch.GRID['budget'], sch.GRID['teacher'], sch.GRID['student'])


def test_factors_todo(repo_root, tmp_path):
    """bench/factors.py's jobs: teachers always, the rows asked for, `--extra` options in every run and `--student-extra`
    in the students only (the paper-scale grid as bench/gpu_factors.sh runs it)."""
    fac = _load(repo_root, 'factors')
    for lang in ('en', 'de'):
        (tmp_path/lang).mkdir()
        for split in ('train', 'dev', 'test'): (tmp_path/lang/f'{split}.txt').write_text('a\tB-PER\n')
    fac.DATA['conll'] = tmp_path
    js = fac.todo(fac.PAPER_SCALE, rows=['contproto_pre', 'no_proto_pre'], extra=['--bs', '32'], student_extra=['--epochs', '2'])
    assert [(j.name, j.after) for j in js] == [('en-de/seed0/teacher', None), ('en-de/seed0/contproto_pre', 'en-de/seed0/teacher'),
                                               ('en-de/seed0/no_proto_pre', 'en-de/seed0/teacher')]
    assert [(j.config.bs, j.config.epochs) for j in js] == [(32, 0), (32, 2), (32, 2)]
    c = js[1].config
    assert (c.student_init, c.ablation, c.tgt_limit, c.tgt_heldout, c.src_limit) == ('pretrained', 'contproto', 11952, 200, None)
    assert [j.name for j in fac.todo(fac.GRID, ['de4x'])] == ['en-de4x/seed0/teacher', 'en-de4x/seed0/contproto', 'en-de4x/seed0/no_proto']
    assert fac.todo(fac.GRID, ['de4x'])[1].config.student_src_limit == 1600


def test_schedule_gpu_seeds_and_repeat(repo_root):
    """Seeds on another machine: the per-target table names each machine's seeds, flags GPU runs, and leaves them out of
    the CPU minutes; a seed run twice gives each row's F1 in both runs and the paired differences within each."""
    sch = _load(repo_root, 'schedule')
    cpu, gpu = dict(device='cpu', cores=2), dict(device='cuda:0', gpu='H200')
    def run(f1, last, m, cpu_s):
        return dict(student=dict(f1=f1, precision=f1, recall=f1), kept_epoch=1, labels=['O', 'PER'], machine=m,
                    cpu_times=dict(student=cpu_s), trace=[dict(test=dict(f1=last), pseudo=dict(f1=.5), span=dict(precision=.4, recall=.3),
                                                                moves={k: dict(n=0, fixed=0, broken=0) for k in sch.MOVES}, refined=False)])
    teacher = lambda f1, m: dict(teacher=dict(f1=f1, precision=f1, recall=f1), machine=m)
    by_seed = {0: dict(teacher=teacher(.5, cpu), vanilla=run(.55, .54, cpu, 600), contproto=run(.57, .58, cpu, 1200)),
               2: dict(teacher=teacher(.6, gpu), vanilla=run(.62, .61, gpu, 30), contproto=run(.60, .65, gpu, 40))}
    grid = dict(rows=dict(vanilla=[], contproto=[]), extra={})
    md = sch.target_table('xx', by_seed, 'cmd', grid)
    assert f'seed 0: {json.dumps(cpu)}; seed 2: {json.dumps(gpu)}' in md and 'not bit-reproducible' in md, md
    assert '| vanilla |  | — | —% | 10 |' in md and '| contproto |  | — | —% | 20 |' in md, md   # CPU minutes: the GPU runs' left out
    again = dict(teacher=teacher(.58, gpu), vanilla=run(.63, .60, gpu, 30), contproto=run(.66, .64, gpu, 40))
    rmd, js = sch.repeat_table(by_seed[2], again, 'xx', 2, rows=('teacher', 'vanilla', 'contproto'))
    assert js['rows']['contproto']['kept'] == [.60, .66] and js['diffs']['contproto-vanilla']['kept'] == [pytest.approx(-.02), pytest.approx(.03)]
    assert js['diffs']['contproto-vanilla']['last'] == [pytest.approx(.04), pytest.approx(.04)]
    assert '| contproto | 60.00 | 66.00 | +6.00 | 1, 1 |' in rmd and '| teacher | 60.00 | 58.00 | -2.00 |  |' in rmd, rmd
    assert '| contproto − vanilla | -2.00 | +3.00 | +4.00 | +4.00 |' in rmd, rmd
    ans = sch.answer(dict(xx=by_seed), grid)
    assert ans['xx']['gpu_seeds'] == [2] and 'Seeds run on a GPU (' in sch.answer_table(ans) and '): xx 2;' in sch.answer_table(ans)


def test_factors_tables_on_hand_built_runs(repo_root, tmp_path):
    """bench/factors.py: the tidy records and their pivots on hand-built runs of two seeds whose numbers all differ:
    both metrics' rise over the refining epochs, pairs only where both rows finished, the held-out share, Fig. 3 twice."""
    import json
    from contproto_fastai.results import Results
    fac = _load(repo_root, 'factors')
    def run(folder, kept, pseudo, span, differs, held):
        "A finished student: entity F1 and span F1 of the labels (teacher's, then after each epoch), model ≠ label counts."
        tr = [dict(epoch=i, refined=i > 0, pseudo=dict(f1=p), span=dict(f1=s, precision=s, recall=s), test=dict(f1=kept),
                   moves={k: dict(n=i) for k in ('entity_to_o', 'o_to_entity', 'entity_to_entity')},
                   agreement=dict(train=dict(spans=100, model=dict(differs=differs, toward_gold=1, from_gold=0),
                                             nearest=dict(differs=7, toward_gold=2, from_gold=3)),
                                  heldout=dict(spans=50, model=dict(differs=held, toward_gold=0, from_gold=1))))
              for i, (p, s) in enumerate(zip(pseudo[1:], span[1:]))]
        folder.mkdir(parents=True)
        Results(config={}, status='finished', student=dict(f1=kept), kept_epoch=2, trace=tr, student_history=[dict(span_f1=.9)] * len(tr),
                trace_start=dict(pseudo=dict(f1=pseudo[0]), span=dict(f1=span[0], precision=0, recall=0)),
                cpu_times=dict(student=120.)).save(folder)
    d = tmp_path/'runs'/'en-de'
    run(d/'seed0'/'contproto_pre', .60, [.5, .5, .52, .55], [.4, .4, .45, .50], 10, 20)
    run(d/'seed0'/'no_proto_pre', .58, [.5, .5, .5, .5], [.4, .4, .4, .4], 2, 25)
    run(d/'seed1'/'contproto_pre', .62, [.6, .6, .61, .62], [.5, .5, .5, .54], 12, 30)     # seed 1: no no_proto_pre
    rr, ee = fac.tidy(tmp_path/'runs')
    assert len(rr) == 3 and len(ee) == 3 * 4
    assert fac._rise(ee, 'de', 0, 'contproto_pre', 'span_f1') == pytest.approx(.10)          # after warm-up .40 → end .50
    assert fac._rise(ee, 'de', 1, 'contproto_pre', 'pseudo_f1') == pytest.approx(.02)
    md = fac.tables(rr, ee, commit='abc1234')['de']
    assert 'commit abc1234' in md
    row = next(l for l in md.splitlines() if l.startswith('| contproto_pre | 2 |'))
    assert '| 61.00 ± 1.41 |' in row and '| 3.50 ± 2.12 |' in row and '| 7.00 ± 4.24 |' in row   # kept F1; rises 5, 2 and 10, 4
    pair = next(l for l in md.splitlines() if l.startswith('| contproto_pre − no_proto_pre |'))
    assert pair.split('|')[2].strip() == '1' and '| 2.00 | 2.00 | 5.00 | 10.00 |' in pair      # seed 0 only
    assert '| 2.00% | 50.00% |' in next(l for l in md.splitlines() if l.startswith('| no_proto_pre |'))   # 2 of 100, 25 of 50
    fac.write_tables(tmp_path/'runs', tmp_path/'out')
    assert (tmp_path/'out'/'factors_en-de_fig3.png').exists() and (tmp_path/'out'/'factors_en-de_fig3_span.png').exists()
    js = json.loads((tmp_path/'out'/'factors.json').read_text())
    assert {r['row'] for r in js['runs']} == {'contproto_pre', 'no_proto_pre'}
    import shutil
    shutil.rmtree(d/'seed1')                                   # a run folder lost: its records stay in factors.json
    fac.write_tables(tmp_path/'runs', tmp_path/'out')
    js = json.loads((tmp_path/'out'/'factors.json').read_text())
    assert sorted((r['seed'], r['row']) for r in js['runs']) == [(0, 'contproto_pre'), (0, 'no_proto_pre'), (1, 'contproto_pre')]


def test_predict_memory_smoke(repo_root, tmp_path):
    "bench/predict_memory.py on a tiny exported model: one fresh process per (lines, mode), a row each, a table from its JSON."
    from contproto_fastai.data import word_tokenizer, LabelSet
    from contproto_fastai.model import SpanNER, tiny_encoder
    from contproto_fastai.predict import SpanPredictor
    tok = word_tokenizer(['Anna', 'lebt', 'in', 'Paris', '.'])
    SpanPredictor(SpanNER(tiny_encoder(len(tok), seed=0), 3), tok, LabelSet(['LOC', 'PER']), max_len=32).export(tmp_path/'model')
    pm = _load(repo_root, 'predict_memory')
    out = tmp_path/'pm.json'
    pm.main(['--lines', '7', '--model', str(tmp_path/'model'), '--out', str(out)])
    js = json.loads(out.read_text())
    assert [(r['lines'], r['mode'], r['sentences']) for r in js['rows']] == [(7, 'chunked', 7), (7, 'whole file', 7)]
    assert all(r['peak_mb'] > 50 for r in js['rows']) and js['command'].startswith('python bench/predict_memory.py')
    md = out.with_suffix('.md').read_text(); out.with_suffix('.md').unlink()
    pm.main(['--tables', '--out', str(out)])
    assert out.with_suffix('.md').read_text() == md and '| 7 | whole file |' in md
