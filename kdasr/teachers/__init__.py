"""Teachers for knowledge distillation: BERT (masked LM) and a Transformer LM, and the soft labels
they give the student (DESIGN.md §4)."""
