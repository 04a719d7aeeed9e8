"""vqstudy.tables: the arms of a primary test taken out of a chapter's results frame."""
from __future__ import annotations

import pandas as pd
import pytest

from vqstudy.tables import by_seed


def test_by_seed_takes_one_arm():
    df = pd.DataFrame({"condition": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "perplexity": [1.0, 2.0, 3.0, 4.0]})
    assert by_seed(df, "b", "perplexity") == {0: 3.0, 1: 4.0}
    with pytest.raises(ValueError, match="metric"):
        by_seed(df, "a", "spread")
    with pytest.raises(ValueError, match="no runs"):
        by_seed(df, "c", "perplexity")
    with pytest.raises(ValueError, match="more than once"):
        by_seed(pd.concat([df, df]), "a", "perplexity")
