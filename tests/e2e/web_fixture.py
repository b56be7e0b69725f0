"""A generated Apple Health export for the web app's tests and benchmark:
`days` days ending at the last UTC midnight, a person with an Apple Watch —
steps in 10-minute chunks over the 16 waking hours following a day/night
rhythm (or in 1-minute chunks with minute=True), heart rate every 10 minutes, a resting heart rate
and an HRV reading per day, and each night's sleep stages (core, deep, REM,
awake). Deterministic (seeded), written as export.xml or export.zip.
"""
import io
import math
import random
import zipfile
from datetime import datetime, timedelta, timezone

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout)*)>
]>
<HealthData locale="en_US">
 <ExportDate value="%s"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth=""/>
"""


def _t(dt):
    return dt.strftime("%Y-%m-%d %H:%M:%S +0000")


def _rec(out, typ, src, unit, start, end, value):
    u = ' unit="%s"' % unit if unit else ""
    out.write(' <Record type="%s" sourceName="%s"%s creationDate="%s" startDate="%s" endDate="%s" value="%s"/>\n'
              % (typ, src, u, _t(end), _t(start), _t(end), value))


def export_xml(days=21, minute=False, seed=7, end=None):
    rnd = random.Random(seed)
    end = end or datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    out = io.StringIO()
    out.write(HEAD % _t(end))
    step = 1 if minute else 10
    for d in range(days):
        day = start + timedelta(days=d)
        for m in range(0, 1440, step):
            hour = m / 60.0
            awake = 7 <= hour < 23
            if not awake:
                continue
            level = 0.5 + 0.5 * math.cos(2 * math.pi * (hour - 15) / 24)
            v = int(rnd.uniform(0.2, 1.0) * level * 12 * step)
            if v > 0:
                t = day + timedelta(minutes=m)
                _rec(out, "HKQuantityTypeIdentifierStepCount", "Phone", "count", t, t + timedelta(minutes=step), v)
        for m in range(0, 1440, 10):
            hour = m / 60.0
            hr = 58 + (18 if 7 <= hour < 23 else 0) + rnd.randint(-4, 6)
            t = day + timedelta(minutes=m)
            _rec(out, "HKQuantityTypeIdentifierHeartRate", "Watch", "count/min", t, t, hr)
        t = day + timedelta(hours=8)
        _rec(out, "HKQuantityTypeIdentifierRestingHeartRate", "Watch", "count/min", t, t, 56 + rnd.randint(-3, 3))
        _rec(out, "HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "Watch", "ms", t, t, 48 + rnd.randint(-9, 9))
        _rec(out, "HKQuantityTypeIdentifierDietaryCaffeine", "App", "mg", t, t, 80)
        # The night that ends on this day: 23:10 the evening before to ~06:50.
        cur = day - timedelta(minutes=50)
        stop = day + timedelta(hours=6, minutes=50 + rnd.randint(-20, 20))
        cycle = ["HKCategoryValueSleepAnalysisAsleepCore", "HKCategoryValueSleepAnalysisAsleepDeep",
                 "HKCategoryValueSleepAnalysisAsleepCore", "HKCategoryValueSleepAnalysisAsleepREM",
                 "HKCategoryValueSleepAnalysisAwake"]
        k = 0
        while cur < stop and d > 0:
            length = timedelta(minutes=5 if cycle[k % 5].endswith("Awake") else rnd.randint(20, 40))
            nxt = min(stop, cur + length)
            out.write(' <Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="Watch" creationDate="%s" '
                      'startDate="%s" endDate="%s" value="%s"/>\n' % (_t(nxt), _t(cur), _t(nxt), cycle[k % 5]))
            cur = nxt
            k += 1
    out.write("</HealthData>\n")
    return out.getvalue().encode()


def export_zip(**kw):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("apple_health_export/export.xml", export_xml(**kw))
    return buf.getvalue()


if __name__ == "__main__":
    import sys
    data = export_zip(days=int(sys.argv[2]) if len(sys.argv) > 2 else 21)
    with open(sys.argv[1], "wb") as f:
        f.write(data)
