"""Package data: the Cedar schema (``accessledger.cedarschema``) and the default policy set.

Each ``*.cedar`` file encodes one scenario of DESIGN.md section 7; every policy
carries an ``@id`` annotation, and break-glass permits an ``@obligation``.
``docs/policies.md`` is the reviewer's guide.
"""
