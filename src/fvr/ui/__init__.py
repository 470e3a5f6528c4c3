"""``fvr ui``: the local web app (:mod:`fvr.ui.app`, needs the extra ``fvr[ui]``) over the steps in
:mod:`fvr.ui.session`, which need no web framework."""
