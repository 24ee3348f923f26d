-- Shadow simulation: the paper venue's model against each network venue, per venue and day
-- (of the send). Built on shadow_orders.
-- uses: shadow_orders
-- @day_start TIMESTAMP: the period's first instant (UTC)
-- @day_end TIMESTAMP: the first instant after the period
-- @account STRING NULL: one account, or NULL for every account
--
-- orders: the shadowed orders; both_filled: those the venue and the model both filled some of,
-- over which the price and time errors are taken (mean and median, continuous). Fill rates are
-- ratios of the sums (weighted by size); fill_rate_difference is the venue's less the model's
-- (positive: the venue filled more than the model said).
WITH windowed AS (
  SELECT
    *,
    PERCENTILE_CONT(price_error_bps, 0.5) OVER w AS median_price_error_bps,
    PERCENTILE_CONT(time_error_ms, 0.5) OVER w AS median_time_error_ms
  FROM shadow_orders
  WINDOW w AS (PARTITION BY venue, day)
)
SELECT
  venue,
  day,
  COUNT(*) AS orders,
  COUNTIF(price_error_bps IS NOT NULL) AS both_filled,
  AVG(price_error_bps) AS mean_price_error_bps,
  ANY_VALUE(median_price_error_bps) AS median_price_error_bps,
  AVG(time_error_ms) AS mean_time_error_ms,
  ANY_VALUE(median_time_error_ms) AS median_time_error_ms,
  SAFE_DIVIDE(CAST(SUM(real_filled_quantity) AS FLOAT64), CAST(SUM(quantity) AS FLOAT64))
    AS real_fill_rate,
  SAFE_DIVIDE(CAST(SUM(model_filled_quantity) AS FLOAT64), CAST(SUM(quantity) AS FLOAT64))
    AS model_fill_rate,
  SAFE_DIVIDE(CAST(SUM(real_filled_quantity) - SUM(model_filled_quantity) AS FLOAT64),
    CAST(SUM(quantity) AS FLOAT64)) AS fill_rate_difference
FROM windowed
GROUP BY venue, day
ORDER BY venue, day
