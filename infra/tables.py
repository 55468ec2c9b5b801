"""The two memory tables, built from the key schema the code uses (functions/memory/schema.py)."""

from aws_cdk import Acknowledgment, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from functions.memory import schema
from infra.settings import LONG_TERM_TABLE_SUFFIX

# The DynamoDB actions each function's code calls: one tuple per function, the one place to edit when
# the calls change (tests/integration/test_exact_grants.py records every call of each function's code
# and compares it with its tuple). A transaction is authorised item by item, by the action each item
# performs (Put: PutItem, Update: UpdateItem, Delete: DeleteItem, ConditionCheck: ConditionCheckItem),
# and TransactGetItems by GetItem:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
# The API: every route (turns, idempotency claims and releases, async turn status, history, erasure
# with its batch deletes, facts).
API_TABLE_ACTIONS = (
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
# The worker: one turn (status claim, progress, done), its reads and its remember/forget tools.
WORKER_TABLE_ACTIONS = (
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
# The compactor, on the sessions table only: it reads a session's fence and turns, writes its summary
# in a transaction that checks the covered turn, and deletes it again if the session was erased
# meanwhile.
COMPACTOR_TABLE_ACTIONS = (
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
)

def _string_key(name: str) -> dynamodb.Attribute:
    # Every key of both tables is a string: ids, composite keys and ISO-8601 timestamps.
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


def _table(
    scope: Construct, construct_id: str, *, table_schema: schema.TableSchema, **props
) -> dynamodb.Table:
    table = dynamodb.Table(
        scope,
        construct_id,
        partition_key=_string_key(table_schema.partition_key),
        sort_key=_string_key(table_schema.sort_key),
        time_to_live_attribute=table_schema.ttl_attribute,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        # The AWS managed key: encrypted at rest and auditable in CloudTrail, no monthly key fee.
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        **props,
    )
    return table


class MemoryTables(Construct):
    """Conversation memory (per session, expires) and long-term memory (per user, permanent)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)

        # Conversations expire after 30 days anyway: deleting the stack deletes them too, so a
        # teardown leaves nothing behind that costs money or holds personal data by accident.
        self.sessions = _table(
            self,
            "Sessions",
            table_schema=schema.SESSIONS,
            removal_policy=RemovalPolicy.DESTROY,
            # The compactor summarises new turns as they are written (infra/compactor.py); its filter
            # and code read only keys, so no conversation text flows through the stream.
            stream=dynamodb.StreamViewType.KEYS_ONLY,
        )
        Validations.of(self.sessions).acknowledge(
            Acknowledgment(
                id="AwsSolutions-DDB3",
                reason="Conversation memory is short-lived by design (30-day TTL) and destroyed with "
                "the stack; the durable tier, long-term memory, has point-in-time recovery.",
            )
        )

        # Users' facts are the state worth keeping: survive a stack deletion and a bad deploy. The
        # static name lets the next creation of the stack import the retained table (`cdk deploy
        # --import-existing-resources` asks CloudFormation to; it imports "named resources" with a
        # static name and a Retain deletion policy, and only those:
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/import-resources-automatically.html).
        # Without the import, creating a table whose name exists fails; with a generated name, the
        # new stack would silently start an empty table.
        self.long_term = _table(
            self,
            "LongTerm",
            table_name=f"{Stack.of(self).stack_name}{LONG_TERM_TABLE_SUFFIX}",
            table_schema=schema.LONG_TERM,
            removal_policy=RemovalPolicy.RETAIN,
            deletion_protection=True,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
        )

    def grant_data(self, grantee: iam.IGrantable, actions: tuple[str, ...]) -> None:
        """`actions` on these two tables only: no index, no wildcard resource."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(actions), resource_arns=[self.sessions.table_arn, self.long_term.table_arn]
        )

    def grant_compaction(self, grantee: iam.IGrantable) -> None:
        """The compactor's data actions, on the sessions table only (stream reads come with its mapping)."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(COMPACTOR_TABLE_ACTIONS), resource_arns=[self.sessions.table_arn]
        )
