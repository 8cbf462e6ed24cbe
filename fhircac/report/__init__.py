"""The patient and clinician report page: chart (``chart``), text choices (``page``), data (``data``)."""
