"""viz — draw unfold's graphs the way chapter 10 of the Deep Learning book does."""
from .views import folded, unfolded, unfolding
from .figures import figure
from .ops_view import graph
