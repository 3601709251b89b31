"""The only package that imports Django: policy loading and the message-log database writer."""
