-- Markouts: how the market moved after each fill, 1 s, 5 s and 60 s later, per venue (and day).
-- @day_start TIMESTAMP: the period's first instant (UTC); fills in [@day_start, @day_end)
-- @day_end TIMESTAMP: the first instant after the period
-- @account STRING NULL: one account, or NULL for every account
-- @per_day BOOL: a row per venue, day and horizon (TRUE), or per venue and horizon (FALSE)
--
-- A fill's markout at horizon h: the mid of the instrument's last quote at or before the fill's
-- time + h, against the fill's price, in basis points of the price, signed so that positive is
-- in the fill's favour (for a buy, the mid rose above the price paid; for a sell, it fell below
-- the price received). markout_bps is the mean over the fills that have such a quote (marked).
-- A horizon the quotes have not reached yet (no quote of the instrument at or after the fill's
-- time + h: just filled, or the feed stopped) leaves the fill unmarked, not marked stale.
WITH fills AS (
  SELECT venue, instrument, price, event_time, IF(side = 'BUY', 1, -1) AS sign
  FROM trading.fills
  WHERE event_time >= @day_start AND event_time < @day_end
    AND (@account IS NULL OR account_id = @account)
),
-- Each fill three times, at its time + each horizon, among the quotes of its instrument in time
-- order: the last mid before a target row (a quote at the same time first) is its mark.
timeline AS (
  SELECT instrument, event_time AS at, 0 AS is_target, mid,
    CAST(NULL AS STRING) AS venue, CAST(NULL AS DATE) AS day, CAST(NULL AS INT64) AS horizon_s,
    CAST(NULL AS INT64) AS sign, CAST(NULL AS FLOAT64) AS price
  FROM trading.quotes
  WHERE event_time >= TIMESTAMP_SUB(@day_start, INTERVAL 1 DAY)
    AND event_time < TIMESTAMP_ADD(@day_end, INTERVAL 61 SECOND)
    AND instrument IN (SELECT instrument FROM fills)
  UNION ALL
  SELECT instrument, TIMESTAMP_ADD(event_time, INTERVAL horizon_s SECOND), 1, NULL,
    venue, IF(@per_day, DATE(event_time), NULL), horizon_s, sign, CAST(price AS FLOAT64)
  FROM fills
  CROSS JOIN UNNEST([1, 5, 60]) AS horizon_s
),
reached AS (
  SELECT instrument, MAX(event_time) AS last_quote FROM trading.quotes GROUP BY instrument
),
marked AS (
  SELECT
    venue, day, horizon_s, sign, price, at, instrument,
    LAST_VALUE(mid IGNORE NULLS) OVER (
      PARTITION BY instrument ORDER BY at, is_target
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS mid,
    is_target
  FROM timeline
)
SELECT
  venue,
  day,
  horizon_s,
  COUNT(*) AS fills,
  COUNT(IF(at <= last_quote, mid, NULL)) AS marked,
  AVG(IF(at <= last_quote, sign * (CAST(mid AS FLOAT64) - price) / price, NULL)) * 10000
    AS markout_bps
FROM marked
LEFT JOIN reached USING (instrument)
WHERE is_target = 1
GROUP BY venue, day, horizon_s
ORDER BY venue, day, horizon_s
