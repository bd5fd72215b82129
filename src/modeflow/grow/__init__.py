"""Grow a finished mixture (MoDE §5.5; docs/method.md §13): experts added later, each on new data
assigned with the existing cluster model, trained from the seed like the others, and routed over by
the ensemble with the rest. Nothing the finished mixture already built is rebuilt.

    spec       the grow.experts config entries, checked and resolved (GrownExpert)
    select     which new samples form the added expert's cluster (chosen fine clusters, or new fine
               clusters fitted on samples far from every existing center)
    model      the grown cluster model the ensemble routes with (the base model plus each addition)
"""
