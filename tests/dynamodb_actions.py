"""The IAM actions the DynamoDB calls of a botocore client need, recorded while a block runs.

A transaction is authorised item by item, by the action each item performs, and TransactGetItems by
GetItem: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html"""

import contextlib

TRANSACT_ITEM_ACTIONS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
                         "ConditionCheck": "dynamodb:ConditionCheckItem", "Get": "dynamodb:GetItem"}


@contextlib.contextmanager
def recorded_actions(client):
    """Yields the set of IAM actions that `client`'s calls needed while the block ran."""
    actions: set[str] = set()

    def record(params, model, **_):
        items = params.get("TransactItems")
        if items:
            actions.update(TRANSACT_ITEM_ACTIONS[kind] for item in items for kind in item)
        else:
            actions.add(f"dynamodb:{model.name}")

    client.meta.events.register("before-parameter-build.dynamodb", record)
    try:
        yield actions
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", record)
