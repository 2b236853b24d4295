-- Statistics views over an llmformer prior store, made by PriorStore.connect() on top of its
-- tables: `priors` (every shard table's rows, a Delta table), one view per table over it (images,
-- captions, objects, attributes, relations, failures, the per-shard counts, relation_counts and
-- uncompacted_relations), and prior_sets, text_embeddings, class_names, eval_results and
-- eval_images.

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
-- counts a prior set's triples into relation_counts and, in the same commit, moves its relations
-- to the `rolled_relations` partition of `priors`; relation_mentions adds one row per relation
-- written since, so summing it is exact without grouping millions of rows. The relation
-- statistics all read it.
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

-- Evaluations joined with the priors that produced them. An evaluation is one checkpoint (run,
-- config, prior set, vocabulary mode) on one benchmark; `eval_images` holds its pixel counts per
-- image and class present in the ground truth or the prediction. IoUs are percent, as in
-- eval_results.
CREATE OR REPLACE VIEW eval_class_iou AS
    SELECT run, checkpoint, config, prior_set_id, vocabulary_free, benchmark, dataset,
           class_index, class_name,
           count_if(gt_pixels > 0) AS gt_images,
           sum(gt_pixels) AS gt_pixels, sum(pred_pixels) AS pred_pixels,
           sum(intersection) AS intersection,
           100 * sum(intersection) / (sum(gt_pixels) + sum(pred_pixels) - sum(intersection))
               AS iou
    FROM eval_images
    GROUP BY ALL;

-- The mean over an image's classes (ground truth or predicted) of their IoU in that image.
CREATE OR REPLACE VIEW eval_image_iou AS
    SELECT run, checkpoint, config, prior_set_id, vocabulary_free, benchmark, dataset, image_id,
           count(*) AS classes,
           100 * avg(intersection / (gt_pixels + pred_pixels - intersection)) AS miou
    FROM eval_images
    GROUP BY ALL;

-- Which classes an image's object priors name: an object names a class when its lemma (the
-- parser's name, lower-cased) equals the class name or one of its synonyms (class_names), the
-- rule class_coverage uses. Exact, so it reads the same in plain DuckDB and needs no encoder.
CREATE OR REPLACE VIEW prior_named_classes AS
    SELECT DISTINCT o.prior_set_id, o.dataset, o.image_id, c.class_index, c.class_name
    FROM objects AS o
    JOIN class_names AS c ON c.dataset = o.dataset AND c.synonym = lower(o.name);

-- Per evaluated image and ground-truth class: did the priors of the evaluation's prior set name it?
CREATE OR REPLACE VIEW prior_hits AS
    WITH truth AS (
        SELECT DISTINCT prior_set_id, dataset, image_id, class_index, class_name
        FROM eval_images
        WHERE gt_pixels > 0
    )
    SELECT t.prior_set_id, t.dataset, t.image_id, t.class_index, t.class_name,
           n.class_index IS NOT NULL AS named
    FROM truth AS t
    LEFT JOIN prior_named_classes AS n
        ON n.prior_set_id = t.prior_set_id
        AND n.dataset = t.dataset
        AND n.image_id = t.image_id
        AND n.class_index = t.class_index;

-- IoU of each class over the images whose priors named it and over those whose priors did not;
-- an image counts for a class when the class is in its ground truth or its prediction (so pixels
-- predicted as a class the LLM named but the image lacks count against the named side).
CREATE OR REPLACE VIEW class_iou_by_prior_hit AS
    WITH marked AS (
        SELECT e.*, n.class_index IS NOT NULL AS named
        FROM eval_images AS e
        LEFT JOIN prior_named_classes AS n
            ON n.prior_set_id = e.prior_set_id
            AND n.dataset = e.dataset
            AND n.image_id = e.image_id
            AND n.class_index = e.class_index
    )
    SELECT run, checkpoint, config, prior_set_id, vocabulary_free, benchmark, dataset,
           class_index, class_name,
           count(*) FILTER (WHERE named) AS named_images,
           100 * sum(intersection) FILTER (WHERE named)
               / sum(gt_pixels + pred_pixels - intersection) FILTER (WHERE named) AS named_iou,
           count(*) FILTER (WHERE NOT named) AS unnamed_images,
           100 * sum(intersection) FILTER (WHERE NOT named)
               / sum(gt_pixels + pred_pixels - intersection) FILTER (WHERE NOT named)
               AS unnamed_iou
    FROM marked
    GROUP BY ALL;

-- Per prior set and dataset, over the evaluated images: recall, the share of (image,
-- ground-truth class) pairs the priors named; mean_image_recall, the same averaged per image;
-- precision, the share of (image, named class) pairs whose class is in the image's ground
-- truth. Object names that match no class cannot be judged and are counted apart.
CREATE OR REPLACE VIEW prior_recall AS
    WITH evaluated AS (
        SELECT DISTINCT prior_set_id, dataset, image_id FROM eval_images
    ),
    per_image AS (
        SELECT prior_set_id, dataset, image_id, count(*) AS gt_classes,
               count_if(named) AS named_gt_classes
        FROM prior_hits
        GROUP BY ALL
    ),
    named AS (
        SELECT n.prior_set_id, n.dataset, n.image_id, n.class_index,
               h.class_index IS NOT NULL AS present
        FROM prior_named_classes AS n
        JOIN evaluated USING (prior_set_id, dataset, image_id)
        LEFT JOIN prior_hits AS h
            ON h.prior_set_id = n.prior_set_id
            AND h.dataset = n.dataset
            AND h.image_id = n.image_id
            AND h.class_index = n.class_index
    ),
    unmatched AS (
        SELECT o.prior_set_id, o.dataset, count(DISTINCT (o.image_id, lower(o.name))) AS objects
        FROM objects AS o
        JOIN evaluated USING (prior_set_id, dataset, image_id)
        WHERE NOT EXISTS (
            SELECT 1 FROM class_names AS c
            WHERE c.dataset = o.dataset AND c.synonym = lower(o.name)
        )
        GROUP BY ALL
    ),
    recall AS (
        SELECT prior_set_id, dataset, count(*) AS images, sum(gt_classes) AS gt_classes,
               sum(named_gt_classes) AS named_gt_classes,
               sum(named_gt_classes) / sum(gt_classes) AS recall,
               avg(named_gt_classes / gt_classes) AS mean_image_recall
        FROM per_image
        GROUP BY ALL
    ),
    precision AS (
        SELECT prior_set_id, dataset, count(*) AS named_classes,
               count_if(present) AS named_present, count_if(present) / count(*) AS precision
        FROM named
        GROUP BY ALL
    )
    SELECT r.prior_set_id, r.dataset, r.images, r.gt_classes, r.named_gt_classes, r.recall,
           r.mean_image_recall, coalesce(p.named_classes, 0) AS named_classes,
           coalesce(p.named_present, 0) AS named_present, p.precision,
           coalesce(u.objects, 0) AS unmatched_objects
    FROM recall AS r
    LEFT JOIN precision AS p USING (prior_set_id, dataset)
    LEFT JOIN unmatched AS u USING (prior_set_id, dataset);

-- One row per evaluation and benchmark, to compare checkpoints and prior sets: mIoU (as the
-- eval table's, unrounded), the mean over classes of the IoU where the priors named the class
-- and where they did not, and the prior set's recall and precision on those images.
CREATE OR REPLACE VIEW eval_summary AS
    WITH classes AS (
        SELECT run, checkpoint, config, prior_set_id, vocabulary_free, benchmark, dataset,
               avg(iou) AS miou, avg(named_iou) AS named_miou, avg(unnamed_iou) AS unnamed_miou
        FROM eval_class_iou
        JOIN class_iou_by_prior_hit
            USING (run, checkpoint, config, prior_set_id, vocabulary_free, benchmark, dataset,
                   class_index, class_name)
        GROUP BY ALL
    ),
    sizes AS (
        SELECT run, checkpoint, config, prior_set_id, vocabulary_free, benchmark,
               count(DISTINCT image_id) AS images, max(created_at) AS evaluated_at
        FROM eval_images
        GROUP BY ALL
    )
    SELECT c.run, c.checkpoint, c.config, c.prior_set_id, c.vocabulary_free, c.benchmark,
           c.dataset, s.images, c.miou, c.named_miou, c.unnamed_miou, r.recall, r.precision,
           s.evaluated_at
    FROM classes AS c
    JOIN sizes AS s USING (run, checkpoint, config, prior_set_id, vocabulary_free, benchmark)
    LEFT JOIN prior_recall AS r USING (prior_set_id, dataset);
