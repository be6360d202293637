"""Reports: benches, model cards, paper tables, the load test. They read what eval and the runtime
measure and write Markdown/JSON; scoring itself (WER, bootstrap, tune, run) stays in kdasr.eval."""
