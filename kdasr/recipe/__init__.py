"""The paper recipe as code (issue 25 item 3): a small stage runner (runner.py) and the paper's stages
(paper.py, train_stages.py, eval_stages.py), configured by the same environment variables eval/recipe.sh
has always read (settings.py). The stages call the `kdasr` CLI as subprocesses, so this package imports
little of the library; the few decisions they make in Python (budgets, lambdas, the best student, the
protocol text) are plain functions in logic.py, unit-tested on small files."""
