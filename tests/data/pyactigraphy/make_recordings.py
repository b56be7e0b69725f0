"""Writes the sub-minute and multi-minute reference recordings of this folder.

    python3 make_recordings.py      # writes ref_d.AWD, ref_e.AWD, ref_f.AWD

Actiwatch .AWD files (7 header lines, then one count per epoch; a few
epochs carry the event marker as "<count> M") made for Clarity's tests from
a seeded generator (a 64-bit LCG, so the files do not depend on Python's
random module):

- ref_d.AWD: 30-s epochs (code 2) from 21:13 (mid-hour), 8 days: a regular
  day with a wake time drifting by up to 40 min, an afternoon nap every
  third day and the watch off the wrist for 3 h on day 5 (zeros).
- ref_e.AWD: 2-min epochs (code 8) from 07:31 (an odd minute, so the epochs
  lie at odd minutes of the clock), 9 days of a later, noisier rhythm.
- ref_f.AWD: 15-s epochs (code 1) from 13:07, 5 days.

Counts are per epoch: a 30-s epoch counts about half what a minute would,
so that binarising at > 4 per epoch (pyActigraphy) differs from Clarity's
per-minute sums.
"""
import datetime
import math

STATE = [0x2545F4914F6CDD1D]


def rnd():
    """Uniform in [0, 1) from a 64-bit LCG (Knuth's MMIX constants)."""
    STATE[0] = (STATE[0] * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    return (STATE[0] >> 11) / float(1 << 53)


def level(day, tod_h, wake_h, bed_h, nap):
    """Mean count per minute at time of day tod_h (hours) on day `day`."""
    awake = wake_h <= tod_h < bed_h
    if not awake:
        # still sleep, with a movement now and then
        return 40.0 if rnd() < 0.05 else 1.5
    if nap and 14.5 <= tod_h < 15.5:
        return 5.0
    # activity rises after waking and peaks in the afternoon
    return 60.0 + 140.0 * math.sin(math.pi * (tod_h - wake_h) / (bed_h - wake_h)) ** 2


def write(path, seed, start, epoch_s, code, days, wake0, bed0, drift_h, offwrist=None, nap_every=0):
    STATE[0] = seed
    n = int(days * 86400 / epoch_s)
    lines = ['CLARITY_REF', start.strftime('%d-%b-%Y'), start.strftime('%H:%M'), code, '40', 'SNREF', 'F']
    for i in range(n):
        t = start + datetime.timedelta(seconds=i * epoch_s)
        day = (t - start.replace(hour=0, minute=0)).days
        tod_h = t.hour + t.minute / 60 + t.second / 3600
        wake = wake0 + drift_h * math.sin(day * 1.3)
        bed = bed0 + 0.5 * drift_h * math.cos(day * 0.9)
        nap = nap_every and day % nap_every == 2
        lam = level(day, tod_h, wake, bed, nap) * epoch_s / 60.0
        u = rnd()
        if u < 0.15:
            c = 0  # a still epoch, awake or not
        else:
            c = int(lam * (0.2 + 1.6 * rnd()))
        if offwrist and offwrist[0] <= i < offwrist[1]:
            c = 0
        mark = ' M' if i % 4999 == 1234 else ''
        lines.append('%d%s' % (c, mark))
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    # 30 s from 21:13, off the wrist for 3 h from day 5 at 10:00
    d0 = datetime.datetime(2024, 5, 6, 21, 13)
    off = int(((5 * 24 + 10) * 3600 - (21 * 3600 + 13 * 60)) / 30)
    write('ref_d.AWD', 0x5EED0D, d0, 30, '2', 8, 7.0, 23.0, 0.67, offwrist=(off, off + 360), nap_every=3)
    write('ref_e.AWD', 0x5EED0E, datetime.datetime(2024, 6, 3, 7, 31), 120, '8', 9, 9.5, 24.0, 1.0)
    write('ref_f.AWD', 0x5EED0F, datetime.datetime(2024, 7, 1, 13, 7), 15, '1', 5, 6.5, 22.5, 0.3)
