"""Stage 2, the plan: can a valid profile be deployed (feasibility: ports, budgets, the host's size,
[[hosts]] placement), what runs where (topology, no secrets), and every value the templates print
(plan.py for one host, cluster.py for [[hosts]], make.py picks)."""
