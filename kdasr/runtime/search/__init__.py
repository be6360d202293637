"""Search over the ONNX graphs: greedy, the scored beam search, its scorers (decoder, LM, CTC prefix,
length bonus) and the decode task that wires them from DecodeOptions."""
