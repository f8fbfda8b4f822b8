"""What a person looks at: the colour and code of each class, shared by the HTML report and the viewer outputs."""
