"""Prepares a moto server for tests/metrics_cloudwatch.rs: an IAM user whose signed requests moto
verifies, allowed everything, and CloudWatch data put with that user's key. Prints the key as
JSON. Run with the venv's python (scripts/test.sh installs moto and boto3 there)."""

import datetime
import json
import sys

import boto3

endpoint, region = sys.argv[1], sys.argv[2]
# These three calls are the unauthenticated ones moto allows (INITIAL_NO_AUTH_ACTION_COUNT=3).
bootstrap = dict(endpoint_url=endpoint, region_name=region,
                 aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="bootstrap")
iam = boto3.client("iam", **bootstrap)
iam.create_user(UserName="serin")
key = iam.create_access_key(UserName="serin")["AccessKey"]
iam.put_user_policy(UserName="serin", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))

cw = boto3.client("cloudwatch", endpoint_url=endpoint, region_name=region,
                  aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
now = datetime.datetime.now(datetime.timezone.utc)
dims = [{"Name": "appName", "Value": "podinfo.test"}]
cw.put_metric_data(Namespace="MyKubernetesCluster", MetricData=[
    {"MetricName": "ErrorCount", "Dimensions": dims, "Value": 5, "Unit": "Count",
     "Timestamp": now - datetime.timedelta(seconds=30)},
    {"MetricName": "RequestCount", "Dimensions": dims, "Value": 100, "Unit": "Count",
     "Timestamp": now - datetime.timedelta(seconds=30)},
])
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
