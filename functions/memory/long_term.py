"""Long-term memory: permanent key/value facts per user, in their own table."""

import time

from memory.conversation import batch_write_all, translate_errors
from memory.turns import iso


class FactStore:
    def __init__(self, *, client, table_name: str, clock=time.time):
        self._client = client
        self._table = table_name
        self._clock = clock

    @translate_errors
    def all(self, user_id: str) -> dict[str, str]:
        facts, start = {}, None
        while True:
            page = self._client.query(
                TableName=self._table,
                KeyConditionExpression="user_id = :user",
                ExpressionAttributeValues={":user": {"S": user_id}},
                ConsistentRead=True,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            facts |= {item["fact_key"]["S"]: item["value"]["S"] for item in page["Items"]}
            start = page.get("LastEvaluatedKey")
            if not start:
                return facts

    @translate_errors
    def put(self, user_id: str, key: str, value: str) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "user_id": {"S": user_id},
                "fact_key": {"S": key},
                "value": {"S": value},
                "updated_at": {"S": iso(self._clock())},
            },
        )

    @translate_errors
    def delete(self, user_id: str, key: str) -> bool:
        """Whether there was a fact to delete."""
        response = self._client.delete_item(
            TableName=self._table,
            Key={"user_id": {"S": user_id}, "fact_key": {"S": key}},
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in response

    @translate_errors
    def delete_user(self, user_id: str) -> int:
        keys = list(self.all(user_id))
        batch_write_all(
            self._client,
            self._table,
            [
                {"DeleteRequest": {"Key": {"user_id": {"S": user_id}, "fact_key": {"S": key}}}}
                for key in keys
            ],
        )
        return len(keys)
