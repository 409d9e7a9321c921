"""Every S3 operation the origin serves, through boto3, and each error case.

Run by tests/tests/s3_api.rs with S3_ENDPOINT, S3_KEY and S3_SECRET set; prints OK at the
end and fails with an assertion (exit status 1) otherwise.
"""

import base64
import datetime
import hashlib
import http.client as httpclient
import os
import random
import urllib.error
import urllib.request
import zlib

import boto3
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

EP = os.environ["S3_ENDPOINT"]
AK = os.environ["S3_KEY"]
SK = os.environ["S3_SECRET"]
CFG = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4")
MIB = 1024 * 1024


def client(ak=AK, sk=SK):
    return boto3.client(
        "s3", endpoint_url=EP, aws_access_key_id=ak, aws_secret_access_key=sk,
        region_name="us-east-1", config=CFG)


s3 = client()


def code(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError("expected an error")


def keys(bucket, **kw):
    r = s3.list_objects_v2(Bucket=bucket, **kw)
    return [o["Key"] for o in r.get("Contents", [])]


def md5_b64(b):
    return base64.b64encode(hashlib.md5(b).digest()).decode()


def http(method, url, data=None):
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class ShiftedClock:
    """Signs as if the client's clock were `delta` off (botocore reads it at signing)."""

    def __init__(self, delta):
        self.delta = delta
        self.real = botocore.auth.get_current_datetime

    def __enter__(self):
        botocore.auth.get_current_datetime = lambda: self.real() + self.delta

    def __exit__(self, *exc):
        botocore.auth.get_current_datetime = self.real


B = "boto-ops"

# Buckets.
s3.create_bucket(Bucket=B)
assert code(lambda: s3.create_bucket(Bucket=B)) == "BucketAlreadyOwnedByYou"
assert code(lambda: s3.create_bucket(Bucket="Bad_Name")) == "InvalidBucketName"
assert B in [b["Name"] for b in s3.list_buckets()["Buckets"]]
s3.head_bucket(Bucket=B)
assert s3.get_bucket_location(Bucket=B).get("LocationConstraint") in (None, "")
assert code(lambda: s3.head_bucket(Bucket="no-such-bucket")) in ("404", "NoSuchBucket")
assert code(lambda: s3.get_bucket_location(Bucket="no-such-bucket")) == "NoSuchBucket"

# Objects: metadata, content type, ranges, conditionals.
s3.put_object(Bucket=B, Key="a/one.txt", Body=b"hello world", ContentType="text/plain",
              Metadata={"color": "blue"}, CacheControl="max-age=60")
h = s3.head_object(Bucket=B, Key="a/one.txt")
assert h["Metadata"] == {"color": "blue"}, h
assert h["ContentType"] == "text/plain"
assert h["CacheControl"] == "max-age=60"
assert h["ContentLength"] == 11
etag = h["ETag"]
assert etag == '"%s"' % hashlib.md5(b"hello world").hexdigest(), etag
g = s3.get_object(Bucket=B, Key="a/one.txt")
assert g["Body"].read() == b"hello world"
assert g["Metadata"] == {"color": "blue"}
g = s3.get_object(Bucket=B, Key="a/one.txt", Range="bytes=0-4")
assert g["Body"].read() == b"hello" and g["ContentRange"] == "bytes 0-4/11", g
g = s3.get_object(Bucket=B, Key="a/one.txt", Range="bytes=-5")
assert g["Body"].read() == b"world"
assert code(lambda: s3.get_object(Bucket=B, Key="a/one.txt", Range="bytes=100-200")) == "InvalidRange"
assert code(lambda: s3.get_object(Bucket=B, Key="a/one.txt", IfNoneMatch=etag)) == "304"
assert code(lambda: s3.get_object(Bucket=B, Key="a/one.txt", IfMatch='"0123"')) == "PreconditionFailed"
assert s3.get_object(Bucket=B, Key="a/one.txt", IfMatch=etag)["Body"].read() == b"hello world"
lm = h["LastModified"]
assert code(lambda: s3.get_object(Bucket=B, Key="a/one.txt", IfModifiedSince=lm)) == "304"
s3.get_object(Bucket=B, Key="a/one.txt", IfModifiedSince=lm - datetime.timedelta(days=1))
assert code(lambda: s3.get_object(Bucket=B, Key="a/one.txt",
                                  IfUnmodifiedSince=lm - datetime.timedelta(days=1))) == "PreconditionFailed"
assert code(lambda: s3.get_object(Bucket=B, Key="nope")) == "NoSuchKey"
assert code(lambda: s3.head_object(Bucket=B, Key="nope")) == "404"
assert code(lambda: s3.get_object(Bucket="no-such-bucket", Key="x")) == "NoSuchBucket"
s3.put_object(Bucket=B, Key="empty", Body=b"")
assert s3.get_object(Bucket=B, Key="empty")["Body"].read() == b""

# Content-MD5: checked before anything is stored.
s3.put_object(Bucket=B, Key="md5-ok", Body=b"data", ContentMD5=md5_b64(b"data"))
assert code(lambda: s3.put_object(Bucket=B, Key="md5-bad", Body=b"data",
                                  ContentMD5=md5_b64(b"other"))) == "BadDigest"
assert code(lambda: s3.head_object(Bucket=B, Key="md5-bad")) == "404"
assert "md5-bad" not in keys(B)

# x-amz-checksum-*: checked when sent (boto3 sends a CRC32 by default), nothing stored on a
# mismatch.
s3.put_object(Bucket=B, Key="sum-ok", Body=b"data", ChecksumAlgorithm="SHA256")
s3.put_object(Bucket=B, Key="sum-ok", Body=b"data",
              ChecksumSHA256=base64.b64encode(hashlib.sha256(b"data").digest()).decode())
assert code(lambda: s3.put_object(Bucket=B, Key="sum-bad", Body=b"data",
                                  ChecksumCRC32="AAAAAA==")) == "BadDigest"
assert code(lambda: s3.put_object(
    Bucket=B, Key="sum-bad", Body=b"data",
    ChecksumSHA256=base64.b64encode(hashlib.sha256(b"other").digest()).decode())) == "BadDigest"
assert code(lambda: s3.head_object(Bucket=B, Key="sum-bad")) == "404"

# CopyObject, both metadata directives.
s3.copy_object(Bucket=B, Key="a/copy.txt", CopySource={"Bucket": B, "Key": "a/one.txt"})
h = s3.head_object(Bucket=B, Key="a/copy.txt")
assert h["Metadata"] == {"color": "blue"} and h["ContentType"] == "text/plain", h
s3.copy_object(Bucket=B, Key="a/repl.txt", CopySource={"Bucket": B, "Key": "a/one.txt"},
               MetadataDirective="REPLACE", Metadata={"k": "v"}, ContentType="application/x-test")
h = s3.head_object(Bucket=B, Key="a/repl.txt")
assert h["Metadata"] == {"k": "v"} and h["ContentType"] == "application/x-test", h
assert s3.get_object(Bucket=B, Key="a/repl.txt")["Body"].read() == b"hello world"
assert code(lambda: s3.copy_object(Bucket=B, Key="a/one.txt",
                                   CopySource={"Bucket": B, "Key": "a/one.txt"})) == "InvalidRequest"
assert code(lambda: s3.copy_object(Bucket=B, Key="x",
                                   CopySource={"Bucket": B, "Key": "nope"})) == "NoSuchKey"

# Listings: prefix, delimiter, continuation, start-after, max-keys; v1 with markers.
for k in ["d/x/1", "d/x/2", "d/y/1", "d/z", "e", "w/a b+c%d.txt"]:
    s3.put_object(Bucket=B, Key=k, Body=k.encode())
r = s3.list_objects_v2(Bucket=B, Prefix="d/", Delimiter="/")
assert [o["Key"] for o in r["Contents"]] == ["d/z"], r
assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["d/x/", "d/y/"], r
assert "w/a b+c%d.txt" in keys(B, Prefix="w/")
everything = keys(B)
assert everything == sorted(everything)
seen, token = [], None
while True:
    kw = {"MaxKeys": 2}
    if token:
        kw["ContinuationToken"] = token
    r = s3.list_objects_v2(Bucket=B, **kw)
    assert r["KeyCount"] <= 2
    seen += [o["Key"] for o in r.get("Contents", [])]
    if not r["IsTruncated"]:
        break
    token = r["NextContinuationToken"]
assert seen == everything, (seen, everything)
assert keys(B, StartAfter="d/y/1") == [k for k in everything if k > "d/y/1"]
seen, marker = [], ""
while True:
    r = s3.list_objects(Bucket=B, Marker=marker, MaxKeys=3)
    page = [o["Key"] for o in r.get("Contents", [])]
    seen += page
    if not r["IsTruncated"]:
        break
    marker = r.get("NextMarker", page[-1])
assert seen == everything, (seen, everything)
r = s3.list_objects(Bucket=B, Prefix="d/", Delimiter="/")
assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["d/x/", "d/y/"]

# DeleteObject(s).
r = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "d/x/1"}, {"Key": "d/x/2"}, {"Key": "missing"}]})
assert sorted(d["Key"] for d in r["Deleted"]) == ["d/x/1", "d/x/2", "missing"], r
s3.delete_object(Bucket=B, Key="d/z")
s3.delete_object(Bucket=B, Key="d/z")
assert keys(B, Prefix="d/") == ["d/y/1"]

# Multipart: three parts, listed while in progress, invisible until completed.
rnd = random.Random(7)
parts_data = [rnd.randbytes(5 * MIB), rnd.randbytes(5 * MIB), rnd.randbytes(1024)]
mp = s3.create_multipart_upload(Bucket=B, Key="big.bin", ContentType="application/x-big",
                                Metadata={"m": "1"})
uid = mp["UploadId"]
done = []
for n, data in enumerate(parts_data, 1):
    r = s3.upload_part(Bucket=B, Key="big.bin", UploadId=uid, PartNumber=n, Body=data)
    assert r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    done.append({"PartNumber": n, "ETag": r["ETag"]})
ups = s3.list_multipart_uploads(Bucket=B)["Uploads"]
assert [(u["Key"], u["UploadId"]) for u in ups] == [("big.bin", uid)], ups
lp = s3.list_parts(Bucket=B, Key="big.bin", UploadId=uid)["Parts"]
assert [(p["PartNumber"], p["Size"]) for p in lp] == [(1, 5 * MIB), (2, 5 * MIB), (3, 1024)], lp
assert code(lambda: s3.head_object(Bucket=B, Key="big.bin")) == "404"
assert "big.bin" not in keys(B)
assert not any(b["Name"].endswith("+segments") for b in s3.list_buckets()["Buckets"])
r = s3.complete_multipart_upload(Bucket=B, Key="big.bin", UploadId=uid,
                                 MultipartUpload={"Parts": done})
want = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest() + "-3"
assert r["ETag"] == '"%s"' % want, r
h = s3.head_object(Bucket=B, Key="big.bin")
assert h["ETag"] == '"%s"' % want and h["ContentLength"] == 10 * MIB + 1024, h
assert h["Metadata"] == {"m": "1"} and h["ContentType"] == "application/x-big", h
whole = b"".join(parts_data)
assert s3.get_object(Bucket=B, Key="big.bin")["Body"].read() == whole
rg = s3.get_object(Bucket=B, Key="big.bin", Range="bytes=%d-%d" % (5 * MIB - 10, 5 * MIB + 9))
assert rg["Body"].read() == whole[5 * MIB - 10: 5 * MIB + 10]
listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=B)["Contents"]}
assert listed["big.bin"]["ETag"] == '"%s"' % want and listed["big.bin"]["Size"] == len(whole)
assert s3.list_multipart_uploads(Bucket=B).get("Uploads", []) == []

# Abort removes the parts; the upload is gone.
uid2 = s3.create_multipart_upload(Bucket=B, Key="aborted")["UploadId"]
s3.upload_part(Bucket=B, Key="aborted", UploadId=uid2, PartNumber=1, Body=b"x" * 100)
s3.abort_multipart_upload(Bucket=B, Key="aborted", UploadId=uid2)
assert code(lambda: s3.list_parts(Bucket=B, Key="aborted", UploadId=uid2)) == "NoSuchUpload"
assert code(lambda: s3.upload_part(Bucket=B, Key="aborted", UploadId=uid2, PartNumber=2,
                                   Body=b"y")) == "NoSuchUpload"
assert code(lambda: s3.complete_multipart_upload(
    Bucket=B, Key="aborted", UploadId="0" * 32,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]})) == "NoSuchUpload"

# A too-small part (not the last) fails the completion; nothing is stored at the key.
uid3 = s3.create_multipart_upload(Bucket=B, Key="small")["UploadId"]
small = []
for n in (1, 2):
    r = s3.upload_part(Bucket=B, Key="small", UploadId=uid3, PartNumber=n, Body=b"s" * 1024)
    small.append({"PartNumber": n, "ETag": r["ETag"]})
assert code(lambda: s3.complete_multipart_upload(
    Bucket=B, Key="small", UploadId=uid3, MultipartUpload={"Parts": small})) == "EntityTooSmall"
assert code(lambda: s3.complete_multipart_upload(
    Bucket=B, Key="small", UploadId=uid3,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"%s"' % ("0" * 32)}]})) == "InvalidPart"
assert code(lambda: s3.complete_multipart_upload(
    Bucket=B, Key="small", UploadId=uid3,
    MultipartUpload={"Parts": list(reversed(small))})) == "InvalidPartOrder"

# A part with a wrong checksum is refused and not listed.
assert code(lambda: s3.upload_part(Bucket=B, Key="small", UploadId=uid3, PartNumber=3,
                                   Body=b"t" * 10, ChecksumCRC32="AAAAAA==")) == "BadDigest"
assert [p["PartNumber"] for p in s3.list_parts(Bucket=B, Key="small", UploadId=uid3)["Parts"]] == [1, 2]

creds = Credentials(AK, SK)


class PayloadAs(botocore.auth.S3SigV4Auth):
    """SigV4 with a chosen x-amz-content-sha256 (botocore picks its own otherwise)."""

    def __init__(self, value):
        super().__init__(creds, "s3", "us-east-1")
        self.value = value

    def payload(self, request):
        return self.value


def signed(method, path, data=b"", headers=None, unsigned=False, payload=None):
    """A raw request signed by botocore (`payload`: the x-amz-content-sha256 value)."""
    req = AWSRequest(method=method, url=EP + path, data=data, headers=headers or {})
    value = payload or ("UNSIGNED-PAYLOAD" if unsigned else hashlib.sha256(data).hexdigest())
    PayloadAs(value).add_auth(req)
    return req.prepare()


# An oversized part (more than the 5 GiB the origin takes in one object) is refused from its
# Content-Length, before any of the body is read; nothing is listed.
p = signed("PUT", "/%s/small?partNumber=4&uploadId=%s" % (B, uid3),
           headers={"Content-Length": str(6 << 30)}, unsigned=True)
conn = httpclient.HTTPConnection(EP.split("//", 1)[1], timeout=30)
conn.putrequest("PUT", p.url.split(EP, 1)[1], skip_accept_encoding=True)
for k, v in p.headers.items():
    conn.putheader(k, v)
conn.endheaders()
conn.send(b"x" * 1024)
resp = conn.getresponse()
body = resp.read()
conn.close()
assert resp.status == 400 and b"<Code>EntityTooLarge</Code>" in body, (resp.status, body)
assert [p["PartNumber"] for p in s3.list_parts(Bucket=B, Key="small", UploadId=uid3)["Parts"]] == [1, 2]


def send(p):
    rq = urllib.request.Request(p.url, data=p.body, method=p.method,
                                headers=dict(p.headers.items()))
    try:
        with urllib.request.urlopen(rq) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# A checksum in an aws-chunked trailer (what SDKs send over TLS): checked after the body.
def trailer_put(key, data, crc):
    body = b"%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n" % (len(data), data, crc)
    return send(signed("PUT", "/%s/%s" % (B, key), body, payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                       headers={"Content-Encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
                                "x-amz-decoded-content-length": str(len(data))}))


good = base64.b64encode(zlib.crc32(b"trailer data").to_bytes(4, "big"))
status, body = trailer_put("trailer-ok", b"trailer data", good)
assert status == 200, (status, body)
assert s3.get_object(Bucket=B, Key="trailer-ok")["Body"].read() == b"trailer data"
status, body = trailer_put("trailer-bad", b"trailer data", b"AAAAAA==")
assert status == 400 and b"<Code>BadDigest</Code>" in body, (status, body)
assert code(lambda: s3.head_object(Bucket=B, Key="trailer-bad")) == "404"

# Malformed XML on CompleteMultipartUpload (a raw, correctly signed request).
req = AWSRequest(method="POST", url="%s/%s/small?uploadId=%s" % (EP, B, uid3),
                 data=b"<CompleteMultipartUpload><Part><PartNumber>1</Part>")
req.headers["x-amz-content-sha256"] = hashlib.sha256(req.data).hexdigest()
botocore.auth.S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
prepared = req.prepare()
rq = urllib.request.Request(prepared.url, data=prepared.body, method="POST",
                            headers=dict(prepared.headers.items()))
try:
    with urllib.request.urlopen(rq) as resp:
        status, body = resp.status, resp.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
assert status == 400 and b"<Code>MalformedXML</Code>" in body, (status, body)
assert code(lambda: s3.head_object(Bucket=B, Key="small")) == "404"
assert "small" not in keys(B)
s3.abort_multipart_upload(Bucket=B, Key="small", UploadId=uid3)
assert s3.list_multipart_uploads(Bucket=B).get("Uploads", []) == []

# Presigned GET and PUT (s3s verifies the query signature).
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "a/one.txt"}, ExpiresIn=300)
assert http("GET", url) == (200, b"hello world")
url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "presigned.txt"}, ExpiresIn=300)
status, _ = http("PUT", url, b"via a presigned PUT")
assert status == 200, status
assert s3.get_object(Bucket=B, Key="presigned.txt")["Body"].read() == b"via a presigned PUT"
tampered = url.replace("presigned.txt", "other.txt")
status, body = http("PUT", tampered, b"x")
assert status == 403 and b"SignatureDoesNotMatch" in body, (status, body)

# An expired presigned URL: signed two hours ago, valid for one minute.
with ShiftedClock(datetime.timedelta(hours=-2)):
    old = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "a/one.txt"}, ExpiresIn=60)
status, body = http("GET", old)
assert status == 403 and b"<Code>AccessDenied</Code>" in body and b"expired" in body, (status, body)

# A skewed client clock (30 minutes behind).
with ShiftedClock(datetime.timedelta(minutes=-30)):
    assert code(lambda: client().list_buckets()) == "RequestTimeTooSkewed"

# Wrong secret, unknown key.
assert code(lambda: client(sk="wrong-secret-wrong-secret").list_buckets()) == "SignatureDoesNotMatch"
assert code(lambda: client(ak="AKIANOSUCHKEY0000000").list_buckets()) == "InvalidAccessKeyId"
assert code(lambda: client(sk="wrong-secret-wrong-secret").put_object(
    Bucket=B, Key="forged", Body=b"x")) == "SignatureDoesNotMatch"
assert "forged" not in keys(B)

# DeleteBucket: refused while it holds objects, then gone with its hidden container.
assert code(lambda: s3.delete_bucket(Bucket=B)) == "BucketNotEmpty"
for k in keys(B):
    s3.delete_object(Bucket=B, Key=k)
s3.delete_bucket(Bucket=B)
assert code(lambda: s3.head_bucket(Bucket=B)) in ("404", "NoSuchBucket")
assert code(lambda: s3.delete_bucket(Bucket=B)) == "NoSuchBucket"
print("OK")
