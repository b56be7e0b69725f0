"""Reference values for `clarity analyze --conventions pyactigraphy`.

Runs pyActigraphy's own code -- from a checkout of its public source
(github.com/ghammad/pyActigraphy, NOT committed here; PYACTIGRAPHY_SRC) with
Debian's python3-numpy/-pandas/-scipy/-statsmodels/-numba -- on the
recordings in this folder (made for Clarity, see README.md) and prints IS,
IV, RA, L5, M10 and the L5/M10 onsets with pyActigraphy's defaults.
Optional dependencies that Debian lacks (plotting, spreadsheet I/O, ...) are
stubbed: the AWD reader and the metrics do not use them.

    PYACTIGRAPHY_SRC=/path/to/pyActigraphy /usr/bin/python3 make_reference.py \
        ref_a.AWD ref_b.AWD ref_c.AWD ref_d.AWD ref_e.AWD ref_f.AWD > reference.json

(ref_d/e/f.AWD, at 30-s, 2-min and 15-s epochs, come from make_recordings.py.)
"""
import importlib.abc
import importlib.machinery
import json
import os
import sys
import types

SRC = os.environ.get("PYACTIGRAPHY_SRC", "/tmp/pyActigraphy")
sys.path.insert(0, SRC)
STUB = ('pyexcel', 'lmfit', 'plotly', 'spm1d', 'stochastic', 'accelerometer', 'joblib')
class Stub(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return type(name, (), {'__init__': lambda self, *a, **k: None})
class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in STUB:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        m = Stub(spec.name); m.__path__ = []; return m
    def exec_module(self, m):
        pass
sys.meta_path.insert(0, Finder())
pkg = types.ModuleType('pyActigraphy'); pkg.__path__ = [os.path.join(SRC, 'pyActigraphy')]; sys.modules['pyActigraphy'] = pkg
from pyActigraphy.io.awd import read_raw_awd
out = {}
for f in sys.argv[1:]:
    raw = read_raw_awd(f)
    l5_on, _ = None, None
    from pyActigraphy.metrics.metrics import _lmx
    data = raw.binarized_data(4)
    t5, l5 = _lmx(data, '5h', lowest=True)
    t10, m10 = _lmx(data, '10h', lowest=False)
    out[f.split('/')[-1]] = {
        'IS': float(raw.IS()), 'IV': float(raw.IV()), 'RA': float(raw.RA()),
        'L5': float(raw.L5()), 'M10': float(raw.M10()),
        'L5_onset_min': t5.total_seconds() / 60, 'M10_onset_min': t10.total_seconds() / 60,
        'L5_check': float(l5), 'M10_check': float(m10),
        'epochs': int(raw.data.size), 'frequency_s': raw.frequency.total_seconds(),
    }
import pandas, numpy
print(json.dumps({'pyActigraphy': os.environ.get('PYACTIGRAPHY_REV', 'ghammad/pyActigraphy public source'),
                  'pandas': pandas.__version__, 'numpy': numpy.__version__, 'recordings': out}, indent=1))
