//! Secondary indexes: uuid → ref and name_label → refs, per table.
