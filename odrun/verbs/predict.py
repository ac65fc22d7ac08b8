"""`odrun predict`: the top-k classes per image with an exported classifier (see
odrun.tasks.classify.predict; `odrun detect` is the verb for detectors)."""


def add_parser(sub):
    from odrun.tasks.classify import predict
    return predict.add_parser(sub)
