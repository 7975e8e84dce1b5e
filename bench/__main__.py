"""`python -m bench [name ...]`: run every benchmark module in bench/ (or the named ones) and print their figures."""

import importlib
import pkgutil
import sys
from pathlib import Path

names = sys.argv[1:] or sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                               if not m.name.startswith("_"))
for name in names:
    print(f"\n=== bench.{name} ===", flush=True)
    importlib.import_module(f"bench.{name}").main()
