"""boto3 through different nodes of one cluster: every request goes to another node than the
write before it, so each read depends on the ring (replicas, listing rows, broadcasts), not on
the node that took the write.

Run by tests/tests/cluster_s3.rs with S3_ENDPOINTS (comma-separated, one per node), S3_KEY
and S3_SECRET set; prints OK at the end and fails with an assertion otherwise.
"""

import hashlib
import os
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EPS = os.environ["S3_ENDPOINTS"].split(",")
AK = os.environ["S3_KEY"]
SK = os.environ["S3_SECRET"]
CFG = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4")
MIB = 1024 * 1024
BUCKET = "boto-cluster"


def client(ep):
    return boto3.client(
        "s3", endpoint_url=ep, aws_access_key_id=AK, aws_secret_access_key=SK,
        region_name="us-east-1", config=CFG)


a, b, c = (client(ep) for ep in EPS)


def code(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def eventually(what, cond, timeout=20.0):
    """Listing rows and tombstones reach the nodes past the quorum in the background."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def keys(s3, **kw):
    r = s3.list_objects_v2(Bucket=BUCKET, **kw)
    return [o["Key"] for o in r.get("Contents", [])]


# CreateBucket through one node is on every node (the container broadcast).
a.create_bucket(Bucket=BUCKET)
b.head_bucket(Bucket=BUCKET)
assert BUCKET in [x["Name"] for x in c.list_buckets()["Buckets"]]

# PutObject through one node, GetObject (whole, ranged, metadata) through the others.
body = os.urandom(300_000)
put = a.put_object(Bucket=BUCKET, Key="dir/one.bin", Body=body, Metadata={"color": "blue"},
                   ContentType="application/x-test")
assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), put["ETag"]
g = b.get_object(Bucket=BUCKET, Key="dir/one.bin")
assert g["Body"].read() == body
assert g["Metadata"] == {"color": "blue"}, g["Metadata"]
assert g["ContentType"] == "application/x-test"
assert g["ETag"] == put["ETag"]
r = c.get_object(Bucket=BUCKET, Key="dir/one.bin", Range="bytes=10-19")
assert r["Body"].read() == body[10:20]
assert r["ContentRange"] == "bytes 10-19/300000", r["ContentRange"]
assert c.head_object(Bucket=BUCKET, Key="dir/one.bin")["ContentLength"] == len(body)
assert code(lambda: c.get_object(Bucket=BUCKET, Key="dir/one.bin", IfNoneMatch=put["ETag"])) in ("304", "NotModified")

# CopyObject through a third node reads the source from its replicas.
b.copy_object(Bucket=BUCKET, Key="dir/copy.bin", CopySource={"Bucket": BUCKET, "Key": "dir/one.bin"})
cp = a.get_object(Bucket=BUCKET, Key="dir/copy.bin")
assert cp["Body"].read() == body
assert cp["Metadata"] == {"color": "blue"}

# A multipart upload whose parts go through different nodes, completed through a third.
up = a.create_multipart_upload(Bucket=BUCKET, Key="dir/multi.bin", Metadata={"k": "v"})
uid = up["UploadId"]
p1 = os.urandom(5 * MIB)
p2 = os.urandom(123_456)
e1 = b.upload_part(Bucket=BUCKET, Key="dir/multi.bin", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
e2 = c.upload_part(Bucket=BUCKET, Key="dir/multi.bin", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
done = a.complete_multipart_upload(
    Bucket=BUCKET, Key="dir/multi.bin", UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
want = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest() + "-2"
assert done["ETag"] == '"%s"' % want, done["ETag"]
m = b.get_object(Bucket=BUCKET, Key="dir/multi.bin")
assert m["Body"].read() == p1 + p2
assert m["ETag"] == done["ETag"], m["ETag"]
assert m["Metadata"] == {"k": "v"}
rm = c.get_object(Bucket=BUCKET, Key="dir/multi.bin", Range="bytes=%d-%d" % (5 * MIB - 3, 5 * MIB + 2))
assert rm["Body"].read() == (p1 + p2)[5 * MIB - 3:5 * MIB + 3]
assert c.head_object(Bucket=BUCKET, Key="dir/multi.bin")["ETag"] == done["ETag"]

# Listings are local on every node: each one shows every key, with S3's ETags.
for s3 in (a, b, c):
    eventually("listing on every node",
               lambda: keys(s3, Prefix="dir/") == ["dir/copy.bin", "dir/multi.bin", "dir/one.bin"])
listed = {o["Key"]: o["ETag"] for o in c.list_objects_v2(Bucket=BUCKET)["Contents"]}
assert listed["dir/multi.bin"] == done["ETag"], listed
assert listed["dir/one.bin"] == put["ETag"], listed

# DeleteObject(s) through one node tombstones through the ring.
c.delete_object(Bucket=BUCKET, Key="dir/one.bin")
eventually("deleted everywhere", lambda: all(
    code(lambda: s3.head_object(Bucket=BUCKET, Key="dir/one.bin")) in ("404", "NoSuchKey")
    for s3 in (a, b, c)))
r = a.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "dir/copy.bin"}, {"Key": "dir/multi.bin"}]})
assert len(r["Deleted"]) == 2, r
for s3 in (a, b, c):
    eventually("empty listing on every node", lambda: keys(s3) == [])

# DeleteBucket through one node goes to every node.
eventually("bucket deleted", lambda: code(lambda: b.delete_bucket(Bucket=BUCKET)) is None)
for s3 in (a, b, c):
    eventually("bucket gone on every node",
               lambda: code(lambda: s3.head_bucket(Bucket=BUCKET)) in ("404", "NoSuchBucket"))
print("OK")
