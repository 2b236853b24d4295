-- Views over an llmformer prior store, for the plain `duckdb` CLI and for PriorStore.connect().
-- Paths are relative to the store root: run it from there,
--   cd STORE && duckdb -cmd '.read views.sql'
-- (every store carries a copy of this file at its root).

-- Tables: one view per Parquet table; `schema.parquet` in each folder is a zero-row file that
-- keeps a table readable before anything was written to it.
CREATE OR REPLACE VIEW prior_sets AS SELECT * FROM read_parquet('prior_sets/*.parquet');
CREATE OR REPLACE VIEW images AS SELECT * FROM read_parquet('images/**/*.parquet');
CREATE OR REPLACE VIEW captions AS SELECT * FROM read_parquet('captions/**/*.parquet');
CREATE OR REPLACE VIEW objects AS SELECT * FROM read_parquet('objects/**/*.parquet');
CREATE OR REPLACE VIEW attributes AS SELECT * FROM read_parquet('attributes/**/*.parquet');
CREATE OR REPLACE VIEW relations AS SELECT * FROM read_parquet('relations/**/*.parquet');
CREATE OR REPLACE VIEW failures AS SELECT * FROM read_parquet('failures/**/*.parquet');
CREATE OR REPLACE VIEW object_counts AS SELECT * FROM read_parquet('object_counts/**/*.parquet');
CREATE OR REPLACE VIEW attribute_counts AS
    SELECT * FROM read_parquet('attribute_counts/**/*.parquet');
CREATE OR REPLACE VIEW predicate_counts AS
    SELECT * FROM read_parquet('predicate_counts/**/*.parquet');
CREATE OR REPLACE VIEW relation_counts AS
    SELECT * FROM read_parquet('relation_counts/**/*.parquet');
CREATE OR REPLACE VIEW text_embeddings AS
    SELECT * FROM read_parquet('text_embeddings/*.parquet');
CREATE OR REPLACE VIEW class_names AS SELECT * FROM read_parquet('class_names/*.parquet');
CREATE OR REPLACE VIEW eval_results AS SELECT * FROM read_parquet('eval_results/*.parquet');

-- Statistics. Filter them by prior_set_id and dataset; DuckDB pushes the filter into the scan.
-- Object, attribute and predicate frequencies sum the per-shard *_counts tables that each shard
-- writes with its rows, a few thousand rows per shard instead of millions of prior rows.
CREATE OR REPLACE VIEW object_frequency AS
    SELECT prior_set_id, dataset, name, sum(mentions) AS mentions, sum(instances) AS instances
    FROM object_counts
    GROUP BY ALL;

CREATE OR REPLACE VIEW attribute_frequency AS
    SELECT prior_set_id, dataset, kind, value, sum(mentions) AS mentions
    FROM attribute_counts
    GROUP BY ALL;

CREATE OR REPLACE VIEW predicate_frequency AS
    SELECT prior_set_id, dataset, predicate, sum(mentions) AS mentions
    FROM predicate_counts
    GROUP BY ALL;

-- Relation triples are too many for per-shard counts. Compaction (`llmformer priors compact`)
-- names merged files <prior_set_id>-c<hash>.parquet and counts their triples in relation_counts;
-- relation_mentions adds one row per relation of the shards written since, so summing it is
-- exact without grouping millions of rows. The relation statistics all read it.
CREATE OR REPLACE VIEW uncompacted_relations AS
    SELECT * EXCLUDE (filename)
    FROM read_parquet('relations/**/*.parquet', filename = true)
    WHERE NOT regexp_matches(filename, '-c[0-9a-f]+\.parquet$');

CREATE OR REPLACE VIEW relation_mentions AS
    SELECT prior_set_id, dataset, subject, predicate, object, mentions
    FROM relation_counts
    UNION ALL
    SELECT prior_set_id, dataset, subject_name, predicate, object_name, 1
    FROM uncompacted_relations;

CREATE OR REPLACE VIEW relation_frequency AS
    SELECT prior_set_id, dataset, subject, predicate, object, sum(mentions)::BIGINT AS mentions
    FROM relation_mentions
    GROUP BY ALL;

CREATE OR REPLACE VIEW objects_per_image AS
    SELECT prior_set_id, dataset, num_objects AS objects, count(*) AS images
    FROM captions
    GROUP BY ALL;

-- Coverage of a dataset's class names (and synonyms, from PriorStore.write_class_names) by the
-- object priors of that dataset's images: one row per prior set and class.
CREATE OR REPLACE VIEW class_coverage AS
    WITH prior_set_datasets AS (
        SELECT DISTINCT prior_set_id, dataset FROM captions
    ),
    matches AS (
        SELECT o.prior_set_id, o.dataset, c.class_index, sum(o.mentions) AS mentions
        FROM object_counts AS o
        JOIN class_names AS c ON c.dataset = o.dataset AND c.synonym = lower(o.name)
        GROUP BY ALL
    ),
    classes AS (
        SELECT DISTINCT dataset, class_index, class_name FROM class_names
    )
    SELECT s.prior_set_id, c.dataset, c.class_index, c.class_name,
           coalesce(m.mentions, 0) AS mentions, coalesce(m.mentions, 0) > 0 AS covered
    FROM prior_set_datasets AS s
    JOIN classes AS c ON c.dataset = s.dataset
    LEFT JOIN matches AS m
        ON m.prior_set_id = s.prior_set_id
        AND m.dataset = c.dataset
        AND m.class_index = c.class_index;

CREATE OR REPLACE VIEW class_coverage_summary AS
    SELECT prior_set_id, dataset, count(*) AS classes, count_if(covered) AS covered,
           round(count_if(covered) / count(*), 4) AS coverage
    FROM class_coverage
    GROUP BY ALL;

-- One row per prior set: what it is and how much it holds.
CREATE OR REPLACE VIEW prior_set_summary AS
    WITH counts AS (
        SELECT prior_set_id, count(*) AS images_with_priors, sum(num_objects) AS objects,
               sum(num_attributes) AS attributes, sum(num_relations) AS relations
        FROM captions
        GROUP BY ALL
    ),
    failure_counts AS (
        SELECT prior_set_id, count(DISTINCT image_id) AS failed_images FROM failures GROUP BY ALL
    )
    SELECT p.prior_set_id, p.name, p.captioner, p.model, p.prompt, p.parser, p.parser_version,
           p.created_at,
           coalesce(c.images_with_priors, 0) AS images_with_priors,
           coalesce(f.failed_images, 0) AS failed_images,
           coalesce(c.objects, 0) AS objects,
           coalesce(c.attributes, 0) AS attributes,
           coalesce(c.relations, 0) AS relations
    FROM prior_sets AS p
    LEFT JOIN counts AS c USING (prior_set_id)
    LEFT JOIN failure_counts AS f USING (prior_set_id)
    ORDER BY p.created_at;
