"""Model training: PIT training sets, the data gate, XGBoost, evaluation, model store and promotion.

Stages live in ``training.pipeline`` (what the ``retraining`` DAG and ``riskpipe train`` call);
each module below is one step: ``dataset``, ``validation``, ``device``, ``train``, ``evaluate``,
``report``, ``model_store``, ``promotion``, ``notify``.
"""
