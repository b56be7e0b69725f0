#!/usr/bin/env python3
"""One person's synthetic health data, deterministic from a seed: the
realistic mix issue #19's storage figures are measured on.

`Person(seed).day(d)` yields the day's samples as plain tuples; the two
writers turn them into what Clarity is sent:

  - write_export(path, ...): an Apple Health export.xml (the Health app's
    "Export All Health Data"), the records as the app writes them: a long
    HKDevice description on watch and phone records, local times with the
    offset of the day (US Eastern, DST and a week abroad), metadata entries,
    sleep stages, workouts with statistics, blood pressure correlations,
    types Clarity does not map (body mass, audio exposure) that are counted
    and skipped;
  - app_sync_body(...): a POST /api/v1/healthkit body as the iOS app sends
    it (shared/clients/ios-app.md): stepCount, heartRate, restingHeartRate,
    sleepAnalysis, no HealthKit UUIDs, a window of the last days re-sent on
    every sync.

Per day, about: heart rate every 3 minutes awake, every 10 asleep, every
minute in a workout; active energy per minute when moving and per 10
minutes otherwise; steps and distance per walking bout from the watch and
the phone; basal energy per half hour; a night of sleep stages (in bed,
core, deep, REM, awake); respiratory rate and SpO2 at night; resting heart
rate, HRV and walking heart rate daily; weight most mornings; VO2 max
weekly; a workout four days a week. About 270 KB of export.xml a day.

    python3 bench/health_gen.py export.xml --days 365 --seed 19
"""
import argparse
import datetime as dt
import json
import math
import random

EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)  # first day (local midnight, UTC-5)

WATCH_DEV = ("&lt;&lt;HKDevice: 0x28{:05x}, name:Apple Watch, manufacturer:Apple Inc., model:Watch, "
             "hardware:Watch6,18, software:{}&gt;")
PHONE_DEV = ("&lt;&lt;HKDevice: 0x28{:05x}, name:iPhone, manufacturer:Apple Inc., model:iPhone, "
             "hardware:iPhone15,4, software:{}&gt;")
WATCH_OS = ["10.2", "10.3", "10.4", "10.5", "11.0", "11.1", "11.2"]
PHONE_OS = ["17.2", "17.3", "17.4", "17.5", "18.0", "18.1", "18.2"]

# (kind, HK identifier, unit, source, device kind): kind q = quantity, c = category
HR = ("q", "HKQuantityTypeIdentifierHeartRate", "count/min", "watch")
STEPS_W = ("q", "HKQuantityTypeIdentifierStepCount", "count", "watch")
STEPS_P = ("q", "HKQuantityTypeIdentifierStepCount", "count", "phone")
DIST_W = ("q", "HKQuantityTypeIdentifierDistanceWalkingRunning", "km", "watch")
DIST_P = ("q", "HKQuantityTypeIdentifierDistanceWalkingRunning", "km", "phone")
ACTIVE = ("q", "HKQuantityTypeIdentifierActiveEnergyBurned", "kcal", "watch")
BASAL = ("q", "HKQuantityTypeIdentifierBasalEnergyBurned", "kcal", "watch")
RESTING = ("q", "HKQuantityTypeIdentifierRestingHeartRate", "count/min", "watch")
WALK_HR = ("q", "HKQuantityTypeIdentifierWalkingHeartRateAverage", "count/min", "watch")
HRV = ("q", "HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "ms", "watch")
RESP = ("q", "HKQuantityTypeIdentifierRespiratoryRate", "count/min", "watch")
SPO2 = ("q", "HKQuantityTypeIdentifierOxygenSaturation", "%", "watch")
VO2 = ("q", "HKQuantityTypeIdentifierVO2Max", "mL/min·kg", "watch")
FLIGHTS = ("q", "HKQuantityTypeIdentifierFlightsClimbed", "count", "phone")
EXERCISE = ("q", "HKQuantityTypeIdentifierAppleExerciseTime", "min", "watch")
AUDIO = ("q", "HKQuantityTypeIdentifierEnvironmentalAudioExposure", "dBASPL", "watch")  # not mapped
WEIGHT = ("q", "HKQuantityTypeIdentifierBodyMass", "kg", "scale")  # not mapped
SLEEP = ("c", "HKCategoryTypeIdentifierSleepAnalysis", None, "watch")

SLEEP_VALUES = {0: "HKCategoryValueSleepAnalysisInBed", 2: "HKCategoryValueSleepAnalysisAwake",
                3: "HKCategoryValueSleepAnalysisAsleepCore", 4: "HKCategoryValueSleepAnalysisAsleepDeep",
                5: "HKCategoryValueSleepAnalysisAsleepREM"}
SLEEP_STAGE = {0: "inBed", 2: "awake", 3: "core", 4: "deep", 5: "rem"}


def utc_offset_min(day):
    """US Eastern with DST (2025: 9 March to 2 November), a week in Berlin in June."""
    if 160 <= day % 365 < 167:
        return 120
    return -240 if 67 <= day % 365 < 305 else -300


class Person:
    def __init__(self, seed=19):
        self.seed = seed

    def day(self, d):
        """The samples of local day d: (type, start_ms, end_ms, value, offset_min, meta).
        Deterministic in (seed, d) alone, so any window can be made again."""
        r = random.Random(self.seed * 1000003 + d)
        off = utc_offset_min(d)
        base = int((EPOCH + dt.timedelta(days=d)).timestamp() * 1000) - off * 60000  # local midnight
        out = []

        def add(t, m0, m1, v, meta=None):
            out.append((t, base + int(m0 * 60000), base + int(m1 * 60000), v, off, meta))

        weekend = (d + 3) % 7 >= 5  # 2025-01-01 was a Wednesday
        wake = 390 + r.randint(0, 60) + (75 if weekend else 0)
        bed = 1350 + r.randint(0, 60)
        workout = None
        if (d % 7) in (0, 2, 4, 5):
            w0 = (1080 if not weekend else 600) + r.randint(0, 60)
            workout = (w0, w0 + 30 + r.randint(0, 30))
        # The night that ends this morning: in bed from about 23:30 the day before.
        night0 = -30 - r.randint(0, 45)
        add(SLEEP, night0, wake, 0, {"stage": 0})
        t = night0 + r.randint(5, 20)
        while t < wake - 5:
            stage = r.choice((3, 3, 3, 4, 5, 5, 2)) if t > night0 + 30 else 3
            ln = min(wake - t, r.randint(8, 45) if stage != 2 else r.randint(1, 6))
            add(SLEEP, t, t + ln, stage, {"stage": stage})
            t += ln
        hr = 62.0
        m = night0
        while m < 1440:
            asleep = m < wake or m >= bed + 15
            in_w = workout is not None and workout[0] <= m < workout[1]
            target = 52 if asleep else (140 if in_w else 72)
            hr += (target - hr) * 0.3 + r.gauss(0, 3)
            hr = min(190.0, max(40.0, hr))
            if m >= 0:
                add(HR, m, m, round(hr), {"motion": 1 if in_w else 0})
            m += 1 if in_w else (10 if asleep else 3)
        # Movement: walking bouts through the waking day, the workout.
        m = wake + 10
        while m < bed:
            in_w = workout is not None and workout[0] <= m < workout[1]
            if in_w or r.random() < 0.22:
                ln = workout[1] - m if in_w else r.randint(2, 12)
                cad = 160 if in_w else r.randint(70, 110)
                steps = cad * ln
                add(STEPS_W, m, m + ln, steps)
                add(DIST_W, m, m + ln, round(steps * 0.00078, 5))
                if r.random() < 0.6:
                    add(STEPS_P, m, m + ln, int(steps * r.uniform(0.7, 1.0)))
                    add(DIST_P, m, m + ln, round(steps * 0.00075, 5))
                for k in range(ln):
                    add(ACTIVE, m + k, m + k + 1, round(r.uniform(4, 12) if in_w else r.uniform(1, 4), 3))
                if r.random() < 0.05:
                    add(FLIGHTS, m, m + ln, r.randint(1, 3))
                if ln >= 5:
                    add(EXERCISE, m, m + ln, float(ln))
                m += ln + r.randint(5, 40)
            else:
                add(ACTIVE, m, m + 10, round(r.uniform(0.5, 2.5), 3))
                m += 10
        for h in range(48):
            add(BASAL, h * 30, h * 30 + 30, round(r.uniform(33, 38), 3))
        for k in range(6):  # the night's respiratory rate and blood oxygen
            s = night0 + 40 + k * 60
            add(RESP, s, s + 1, round(r.uniform(12.5, 16.5), 1))
            add(SPO2, s + 3, s + 3, round(r.uniform(0.94, 0.99), 2))
        add(RESTING, wake + 120, wake + 120, 52 + r.randint(0, 8))
        add(WALK_HR, wake + 600, wake + 600, 95 + r.randint(0, 15))
        for k in range(3):
            add(HRV, wake + 60 + k * 240, wake + 61 + k * 240, round(r.uniform(25, 70), 3))
        if r.random() < 0.8:
            add(WEIGHT, wake + 15, wake + 15, round(78 + 2 * math.sin(d / 40) + r.gauss(0, 0.3), 1))
        if d % 7 == 3:
            add(VO2, wake + 700, wake + 700, round(r.uniform(38, 44), 2))
        for k in range(4):
            s = wake + 120 + k * 180
            add(AUDIO, s, s + 30, round(r.uniform(55, 80), 1))
        self.workout = workout
        self.bp = (118 + r.randint(0, 10), 76 + r.randint(0, 8)) if d % 3 == 0 else None
        out.sort(key=lambda x: (x[1], x[0][1]))
        return out


def local(ms, off):
    t = dt.datetime.fromtimestamp(ms / 1000 + off * 60, dt.timezone.utc)
    a = abs(off)
    return "%s %s%02d%02d" % (t.strftime("%Y-%m-%d %H:%M:%S"), "-" if off < 0 else "+", a // 60, a % 60)


def iso(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_value(v):
    return str(v) if isinstance(v, int) else ("%.6g" % v if abs(v) < 1e6 else repr(v))


def write_export(path, days, seed=19):
    """Write export.xml for days 0..days-1; returns (bytes, top-level elements)."""
    p = Person(seed)
    n = 0
    size = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        def w(s):
            nonlocal size
            size += len(s.encode("utf-8")) if not s.isascii() else len(s)
            f.write(s)
        w('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE HealthData [\n'
          '<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary|ClinicalRecord'
          '|Audiogram|VisionPrescription)*)>\n<!ATTLIST HealthData\n  locale CDATA #REQUIRED\n>\n'
          '<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>\n'
          '<!ATTLIST Record\n  type CDATA #REQUIRED\n  unit CDATA #IMPLIED\n  value CDATA #IMPLIED\n'
          '  sourceName CDATA #REQUIRED\n  sourceVersion CDATA #IMPLIED\n  device CDATA #IMPLIED\n'
          '  creationDate CDATA #IMPLIED\n  startDate CDATA #REQUIRED\n  endDate CDATA #REQUIRED\n>\n]>\n'
          '<HealthData locale="en_US">\n <ExportDate value="%s"/>\n'
          ' <Me HKCharacteristicTypeIdentifierDateOfBirth="1986-04-12" '
          'HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexFemale" '
          'HKCharacteristicTypeIdentifierBloodType="HKBloodTypeNotSet" '
          'HKCharacteristicTypeIdentifierFitzpatrickSkinType="HKFitzpatrickSkinTypeNotSet" '
          'HKCharacteristicTypeIdentifierCardioFitnessMedicationsUse="None"/>\n'
          % local(int((EPOCH + dt.timedelta(days=days)).timestamp() * 1000), -300))
        for d in range(days):
            rel = min(len(WATCH_OS) - 1, d * len(WATCH_OS) // max(days, 1))
            wos, pos = WATCH_OS[rel], PHONE_OS[rel]
            devs = {"watch": ("Jane’s Apple Watch", wos, WATCH_DEV.format(0xc1c20 + rel, wos)),
                    "phone": ("Jane’s iPhone", pos, PHONE_DEV.format(0x3ec1c + rel, pos)),
                    "scale": ("Health Mate", "6.4.1", None)}
            samples = p.day(d)
            for (t, s, e, v, off, meta) in samples:
                kind, ident, unit, src = t
                name, ver, dev = devs[src]
                created = local(e + 90000, off)
                attrs = 'type="%s" sourceName="%s" sourceVersion="%s"%s' % (
                    ident, name, ver, ' device="%s"' % dev if dev else "")
                if kind == "c":
                    head = ' <Record %s creationDate="%s" startDate="%s" endDate="%s" value="%s"' % (
                        attrs, created, local(s, off), local(e, off), SLEEP_VALUES[v])
                else:
                    head = ' <Record %s unit="%s" creationDate="%s" startDate="%s" endDate="%s" value="%s"' % (
                        attrs, unit, created, local(s, off), local(e, off), fmt_value(v))
                if t is HR:
                    w(head + '>\n  <MetadataEntry key="HKMetadataKeyHeartRateMotionContext" value="%d"/>\n'
                      ' </Record>\n' % meta["motion"])
                elif t is SLEEP or t is WEIGHT:
                    w(head + '>\n  <MetadataEntry key="HKTimeZone" value="America/New_York"/>\n </Record>\n')
                else:
                    w(head + "/>\n")
                n += 1
            if p.workout is not None:
                w0, w1 = p.workout
                off = utc_offset_min(d)
                mid = int((EPOCH + dt.timedelta(days=d)).timestamp() * 1000) - off * 60000
                s, e = mid + w0 * 60000, mid + w1 * 60000
                name, ver, dev = devs["watch"]
                km = round((w1 - w0) * 0.16, 2)
                w(' <Workout workoutActivityType="HKWorkoutActivityTypeRunning" duration="%d" durationUnit="min" '
                  'sourceName="%s" sourceVersion="%s" device="%s" creationDate="%s" startDate="%s" endDate="%s">\n'
                  '  <MetadataEntry key="HKIndoorWorkout" value="0"/>\n'
                  '  <MetadataEntry key="HKAverageMETs" value="9.8 kcal/hr·kg"/>\n'
                  '  <MetadataEntry key="HKTimeZone" value="America/New_York"/>\n'
                  '  <WorkoutEvent type="HKWorkoutEventTypeSegment" date="%s" duration="%d" durationUnit="min"/>\n'
                  '  <WorkoutStatistics type="HKQuantityTypeIdentifierActiveEnergyBurned" startDate="%s" '
                  'endDate="%s" sum="%d" unit="kcal"/>\n'
                  '  <WorkoutStatistics type="HKQuantityTypeIdentifierDistanceWalkingRunning" startDate="%s" '
                  'endDate="%s" sum="%s" unit="km"/>\n'
                  '  <WorkoutStatistics type="HKQuantityTypeIdentifierHeartRate" startDate="%s" endDate="%s" '
                  'average="141" minimum="98" maximum="172" unit="count/min"/>\n'
                  ' </Workout>\n'
                  % (w1 - w0, name, ver, dev, local(e + 60000, off), local(s, off), local(e, off), local(s, off),
                     w1 - w0, local(s, off), local(e, off), (w1 - w0) * 11, local(s, off), local(e, off), km,
                     local(s, off), local(e, off)))
                n += 1
            if p.bp is not None:
                off = utc_offset_min(d)
                s = int((EPOCH + dt.timedelta(days=d)).timestamp() * 1000) - off * 60000 + 8 * 3600000
                ls = local(s, off)
                w(' <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Health Mate" '
                  'sourceVersion="6.4.1" creationDate="%s" startDate="%s" endDate="%s">\n'
                  '  <Record type="HKQuantityTypeIdentifierBloodPressureSystolic" sourceName="Health Mate" '
                  'sourceVersion="6.4.1" unit="mmHg" creationDate="%s" startDate="%s" endDate="%s" value="%d"/>\n'
                  '  <Record type="HKQuantityTypeIdentifierBloodPressureDiastolic" sourceName="Health Mate" '
                  'sourceVersion="6.4.1" unit="mmHg" creationDate="%s" startDate="%s" endDate="%s" value="%d"/>\n'
                  ' </Correlation>\n' % (ls, ls, ls, ls, ls, ls, p.bp[0], ls, ls, ls, p.bp[1]))
                n += 1
        w("</HealthData>\n")
    return size, n


APP_TYPES = {HR: ("heartRate", "count/min"), STEPS_W: ("stepCount", "count"), STEPS_P: ("stepCount", "count"),
             RESTING: ("restingHeartRate", "count/min"), SLEEP: ("sleepAnalysis", "min")}


def app_sync_body(person, user_id, first_day, last_day, sync_ms):
    """POST /api/v1/healthkit body for local days first_day..last_day (the
    app's window), the four types the app reads, no UUIDs."""
    samples = []
    for d in range(first_day, last_day + 1):
        for (t, s, e, v, off, meta) in person.day(d):
            if t not in APP_TYPES:
                continue
            name, unit = APP_TYPES[t]
            watch = t[3] == "watch"
            x = {"sample_type": name, "unit": unit, "start_date": iso(s), "end_date": iso(e),
                 "source_revision": {"source": {"name": "Jane’s Apple Watch" if watch else "Jane’s iPhone",
                                                "bundle_identifier": "com.apple.health.8C1F2D3E" if watch
                                                else "com.apple.health"},
                                     "version": "11.1" if watch else "18.1",
                                     "product_type": "Watch6,18" if watch else "iPhone15,4",
                                     "operating_system_version": "11.1.0" if watch else "18.1.0"}}
            if t is SLEEP:
                x["value"] = round((e - s) / 60000.0, 2)
                x["category_value"] = v
                x["metadata"] = {"sleep_stage": SLEEP_STAGE[v]}
            else:
                x["value"] = float(v)
            samples.append(x)
    return {"user_id": user_id, "samples": samples,
            "device_info": {"device_model": "iPhone15,4", "system_name": "iOS", "system_version": "18.1",
                            "app_version": "2.4.0", "time_zone": "America/New_York"},
            "timestamp": iso(sync_ms)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=19)
    a = ap.parse_args()
    size, n = write_export(a.out, a.days, a.seed)
    print(json.dumps({"file": a.out, "bytes": size, "elements": n, "days": a.days, "seed": a.seed}))


if __name__ == "__main__":
    main()
