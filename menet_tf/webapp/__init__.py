"""The local web page: drop photos in, compare before and after, download (``menet-app``)."""
