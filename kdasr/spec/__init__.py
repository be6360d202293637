"""The typed contracts shared by every stage: the model dir (ModelSpec, GraphSpec), the teachers'
spec, DecodeOptions, and the parsing helpers they share. Imports no stage."""
