import os, random, time
from fasts3 import S3, S3GetObject
def test_iter(s3root, s3_kwargs, tmp_path):
    rnd = random.Random(3)
    data = {f"d/{i:04d}": rnd.randbytes(rnd.randrange(0, 30000)) for i in range(300)}
    data["d/big"] = rnd.randbytes(20 << 20)
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        s3.put_many(list(data.items()))
        got = {}
        for o in s3.iter_get(list(data)):
            got[o.key] = o.blob
        assert got == data
        assert [n for n in os.listdir(s3.tmpdir)] == []
        objs = s3.get_recursive(["d"])
        assert {o.key: o.blob for o in objs} == data
        got = {o.key: o.blob for o in s3.iter_recursive(["d"], window=5)}
        assert got == data
        keys = list(data)
        it = s3.iter_get(keys, ordered=True, window=7)
        assert [o.key for o in it] == keys
        it.close()
        before = set(os.listdir(s3.tmpdir))
        it = s3.iter_get(keys + ["nope"], window=4)
        n = 0
        for o in it:
            n += 1
            if n == 10: break
        it.close()
        time.sleep(0.2)
        assert set(os.listdir(s3.tmpdir)) == before
