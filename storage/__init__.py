"""Ground floor: the Parquet prior store and its DuckDB views. The only code touching Parquet."""
