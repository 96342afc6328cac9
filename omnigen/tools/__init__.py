"""Tools around the pipeline: import a hand-written stack, explain a plan, doctor's probes, lint a
folder, docs/profile.md, the Copier template's limits. They use the stages; no stage uses them."""
