"""The standard threat-model budgets, in pixel units of [0, 1] images (8/255 ~= 0.0314): written once here and
imported wherever a default budget is needed."""

#: L-inf radius of the standard CIFAR-10 threat model (8/255 in [0, 1] pixel units)
EPS_LINF = 8 / 255
#: PGD L-inf step size of the standard suites (2/255)
ALPHA_LINF = 2 / 255
#: L2 radius of the standard CIFAR-10 threat model
EPS_L2 = 0.5
