"""The embedded Fabric-compatible ledger engine: storage, chaincode host, client objects.

* :mod:`.statedb` -- one SQLite file per channel (WAL, ``synchronous=FULL``):
  blocks, world state with versions, history index, tx index, metadata;
  ``commit_block`` writes a block and its effects in one transaction; the
  hash chain is verified on open; ``snapshot()`` gives a consistent read view.
* :mod:`.stub` -- ``ChaincodeStub``, fabric-chaincode-python's
  ``ChaincodeStubInterface`` over that state, simulating a transaction into a
  Fabric ``TxReadWriteSet`` (``SimulationResult``); its range queries and
  their iterators are :mod:`.rangescan`.
* :mod:`.chaincode_host` -- ``ChaincodeHost`` runs a low-level ``Chaincode`` or
  contract API contracts against the stub.
* :mod:`.simulation_pool` -- ``SimulationPool`` runs those simulations in
  worker processes with read-only ledger connections, off the parent's GIL.
* :mod:`.network` -- ``EmbeddedNetwork`` wires endorser, orderer and committer
  for a home (:mod:`.opening` opens its ledger, :mod:`.commitloop` commits
  ordered blocks, :mod:`.blockfeed` streams committed ones).
* :mod:`.proposal` -- fabric-gateway style ``Proposal`` and ``Transaction``,
  ``create_proposal_response`` (endorser side) and
  ``create_signed_transaction`` (``protoutil.CreateSignedTx``).

Typical endorse-order-commit flow built on these::

    proposal = Proposal.build(creator=identity.serialized(), channel_id=ch,
                              chaincode_name="accessledger", function="f",
                              args=[...], now=now).sign(identity.signer)
    with db.snapshot() as view:
        result = await host.execute(proposal, view)
    responses = [create_proposal_response(proposal, response=result.response,
                 results=result.rwset_bytes, events=result.event_bytes,
                 chaincode_name=host.name, chaincode_version=host.version,
                 endorser=peer.serialized(), signer=peer.signer) for peer in peers]
    envelope = create_signed_transaction(proposal, responses, identity.signer)
    # order envelopes into a block, validate, then
    db.commit_block(block_bytes, header_hash, transactions=[...], writes=[...])
"""
