"""cells() from the fuzz worktree, loaded into whichever unfold is first on sys.path."""
import importlib.util, sys
import unfold.testing
spec = importlib.util.spec_from_file_location("unfold.testing.fuzz_recurrences",
                                              "/work/wt/fuzz/unfold/testing/recurrences.py")
mod = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = mod
spec.loader.exec_module(mod)
cells = mod.cells
