-- Venue calls: how each network venue answered the router's calls (venue_calls), per venue,
-- operation and day: how many, how they ended, and how long they took.
-- @day_start TIMESTAMP: the period's first instant (UTC)
-- @day_end TIMESTAMP: the first instant after the period
-- @account STRING NULL: the calls about one account's orders, or NULL for every call
-- (reconciliation's queries are about no account)
--
-- error_rate: the calls that did not end ANSWERED over all. Latency percentiles (continuous, in
-- milliseconds) are over the answered calls only: a timeout's latency is its timeout.
WITH calls AS (
  SELECT
    venue, operation, DATE(start_time) AS day, outcome, attempts,
    IF(outcome = 'ANSWERED', latency_us / 1000, NULL) AS answered_ms
  FROM trading.venue_calls
  WHERE start_time >= @day_start AND start_time < @day_end
    AND (@account IS NULL OR account_id = @account)
),
windowed AS (
  SELECT
    *,
    PERCENTILE_CONT(answered_ms, 0.5) OVER w AS latency_p50_ms,
    PERCENTILE_CONT(answered_ms, 0.95) OVER w AS latency_p95_ms,
    PERCENTILE_CONT(answered_ms, 0.99) OVER w AS latency_p99_ms
  FROM calls
  WINDOW w AS (PARTITION BY venue, operation, day)
)
SELECT
  venue,
  operation,
  day,
  COUNT(*) AS calls,
  COUNTIF(outcome = 'ANSWERED') AS answered,
  COUNTIF(outcome = 'REFUSED') AS refused,
  COUNTIF(outcome = 'FAILED') AS failed,
  COUNTIF(outcome = 'TIMED_OUT') AS timed_out,
  COUNTIF(outcome = 'RATE_LIMITED') AS rate_limited,
  COUNTIF(outcome = 'NOT_SENT') AS not_sent,
  SAFE_DIVIDE(COUNTIF(outcome != 'ANSWERED'), COUNT(*)) AS error_rate,
  AVG(attempts) AS mean_attempts,
  ANY_VALUE(latency_p50_ms) AS latency_p50_ms,
  ANY_VALUE(latency_p95_ms) AS latency_p95_ms,
  ANY_VALUE(latency_p99_ms) AS latency_p99_ms
FROM windowed
GROUP BY venue, operation, day
ORDER BY venue, operation, day
