"""Sphinx configuration of the docs site: the notebooks of nbs/ (processed by tools/docs.py into docs/_src) rendered
by myst-nb without executing them, plus one API page per module. Build: `python tools/docs.py` (see README)."""
import configparser
from pathlib import Path

_cfg = configparser.ConfigParser(); _cfg.read(Path(__file__).parent.parent/'settings.ini')
project = _cfg['DEFAULT']['lib_name']
author = _cfg['DEFAULT']['author']
release = _cfg['DEFAULT']['version']
copyright = _cfg['DEFAULT']['copyright']

extensions = ['myst_nb']
nb_execution_mode = 'off'                 # notebooks are tested by nbdev_test; the site shows what they carry
myst_enable_extensions = ['dollarmath', 'amsmath']
myst_heading_anchors = 3
source_suffix = {'.ipynb': 'myst-nb', '.md': 'myst-nb'}
root_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
html_title = project
html_theme_options = dict(description=_cfg['DEFAULT']['description'], fixed_sidebar=True, page_width='1180px', sidebar_width='260px')
html_sidebars = {'**': ['about.html', 'navigation.html', 'searchbox.html']}

# equations: MathJax from Debian's libjs-mathjax (MathJax 2.7, copied into the site by tools/docs.py) so the pages
# render offline; without it Sphinx's default (a CDN) is used. myst's MathJax-3-only settings (ignore classes on the
# page, a v3 config object) would stop MathJax 2 from typesetting anything, so they are off.
MATHJAX_DIR = Path('/usr/share/javascript/mathjax')     # the one place: tools/docs.py and tests/test_docs.py read it from here
if (MATHJAX_DIR/'MathJax.js').exists():
    mathjax_path = 'mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML'
    myst_update_mathjax = False

html_static_path = ['_static']        # custom.css (alabaster links it): wide outputs scroll in the text column
